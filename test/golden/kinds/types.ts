import type { TestContext } from 'node:test';

/** One conformance case: its folder, its name and its parsed case.json. */
export interface CaseContext {
  dir: string;
  name: string;
  // case.json is free-form per kind; each runner validates what it reads.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  spec: any;
}

/** A runner for one `kind`. It registers subtests on `t` and throws/asserts on mismatch. */
export type CaseRunner = (ctx: CaseContext, t: TestContext) => Promise<void>;
