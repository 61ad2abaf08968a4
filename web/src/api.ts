/**
 * A small typed client for the v1 HTTP API (docs/api.md): config, create, job records, the SSE
 * progress stream, cancel, purify-and-check and edits. Same origin only; the API key (when the server
 * asks for one) goes in a header, and the read tokens in the record's `links` serve
 * `EventSource` and `<img>`, which cannot send headers.
 */
export { ApiError, Api, backoffMs, transient, watchJob };
export type {
  ServiceConfig,
  Preset,
  JobRecord,
  Progress,
  ImmunizationResult,
  CheckResult,
  EditingInfo,
  EditRequest,
  EditResult,
  Watch,
  WatchHandlers,
};

interface Preset {
  id: string;
  description: string;
  eps: number;
  stepSize: number;
  steps: number;
  optimizer?: string;
  schedule?: string;
  /** Absent on servers older than issue 15: a uniform budget without a visibility target. */
  stop?: string;
  budget?: 'uniform' | 'texture';
  minSsim?: number | null;
}

interface ServiceConfig {
  version: string;
  auth: 'none' | 'api-key';
  limits: {
    maxUploadBytes: number;
    maxPixels: number;
    maxSteps: number;
    rateCreatePerMinute?: number;
    retentionMs?: number;
  };
  methods: string[];
  /** Methods that protect nothing, offered only to compare against (`noise`). */
  baselines?: string[];
  /** `methods`: what the server can run with this model (diffusion needs an inpainting pipeline). */
  models: { id: string; default?: boolean; description?: string; methods?: string[] }[];
  presets: Preset[];
  defaults: { method?: string; preset?: string; target?: string; seed?: number };
  purifications?: string[];
  checkAvailable?: boolean;
  /** "Test the protection": absent on servers older than the edits endpoint. */
  editing?: EditingInfo;
}

interface EditingInfo {
  available: boolean;
  reason?: string;
  modes?: string[];
  models?: { img2img: string | null; inpaint: string | null };
  /** Ids of test-sized pipelines: they run the real pipeline, but their edits are noise. */
  testModels?: string[];
  defaults?: { mode?: string; strength?: number; steps?: number; guidance?: number; seed?: number };
  limits?: { maxSteps: number; maxPromptChars: number; maxSeed: number };
}

interface EditRequest {
  prompt: string;
  seed?: number;
  steps?: number;
  strength?: number;
  guidance?: number;
  mode?: string;
}

interface EditResult {
  immunization: string;
  mode: string;
  model: string;
  prompt: string;
  seed: number;
  steps: number;
  /** img2img: the share of the schedule run (stepsRun = ⌊steps × strength⌋); null for inpainting. */
  strength?: number | null;
  stepsRun: number;
  width: number;
  height: number;
  resized: boolean;
  between: { psnr: number; ssim: number };
  inputs: { psnr: number; ssim: number };
}

interface Progress {
  step: number;
  steps: number;
  loss: number | null;
  fraction: number;
  etaMs: number | null;
}

interface ImmunizationResult {
  width: number;
  height: number;
  bytes: number;
  linf255?: number;
  psnr?: number;
  ssim?: number;
  /** With a visibility target: whether the result met it, and how the attack kept to it. */
  visibility?: { minSsim: number; met: boolean; budgetScale: number; scaledBack: number | null } | null;
  /** The protection: clean − immunized reconstruction PSNR, dB (higher = better protected). */
  protectionGapDb?: number | null;
  reconstruction?: { model: string; cleanPsnr: number; immunizedPsnr: number; immunizedVsOriginalPsnr?: number } | null;
  attack?: { losses?: number[]; finalLoss?: number; stepsTaken?: number; stoppedBy?: string };
  timing?: { totalMs?: number; attackMs?: number; msPerStep?: number };
}

interface CheckResult {
  immunization: string;
  model: string;
  clean: { reconstructionPsnr: number };
  immunized: { psnr: number; reconstructionPsnr: number };
  purifications: {
    spec: string;
    psnr: number;
    /** The model on the purified original (impress rows: the original as it is); absent on older servers. */
    cleanReconstructionPsnr?: number;
    reconstructionPsnr: number;
    protectionRemaining: number;
    protected: boolean;
  }[];
}

interface JobRecord<R = unknown> {
  id: string;
  kind: 'immunization' | 'check' | 'edit';
  status: 'queued' | 'running' | 'completed' | 'failed' | 'canceled';
  queuePosition?: number | null;
  progress: Progress | null;
  error: { code: string; message: string } | null;
  result: R | null;
  options?: Record<string, unknown>;
  input?: { width: number; height: number; format: string; bytes: number };
  links: { self: string; events: string; result?: string; original?: string; immunized?: string };
}

/** An HTTP error from the API, with its stable code (`E_IMAGE`, `E_VALIDATION`, …). */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

class Api {
  /** Set when the server's `auth` is `api-key`. */
  key = '';

  constructor(readonly base = '') {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.key ? { ...extra, Authorization: `Bearer ${this.key}` } : extra;
  }

  private async call<T>(path: string, init: RequestInit = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        ...init,
        headers: this.headers(init.headers as Record<string, string> | undefined),
      });
    } catch {
      throw new ApiError(0, 'E_NETWORK', 'The service cannot be reached. Is `immunize serve` still running?');
    }
    const text = await res.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON: handled below */
    }
    if (!res.ok) {
      const e = (body as { error?: { code?: string; message?: string; field?: string } } | null)?.error;
      const retry = res.headers.get('Retry-After');
      const msg = e?.message ?? `The service answered ${res.status} ${res.statusText}.`;
      throw new ApiError(res.status, e?.code ?? 'E_HTTP', retry ? `${msg} (try again in ${retry} s)` : msg, e?.field);
    }
    return body as T;
  }

  config(): Promise<ServiceConfig> {
    return this.call('/v1/config');
  }

  create(
    fields: Record<string, string>,
    image: Blob,
    imageName: string,
    mask?: Blob,
  ): Promise<JobRecord<ImmunizationResult>> {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    form.append('image', image, imageName);
    if (mask) form.append('mask', mask, 'mask.png');
    return this.call('/v1/immunizations', { method: 'POST', body: form });
  }

  get<R>(selfLink: string): Promise<JobRecord<R>> {
    return this.call(selfLink);
  }

  cancel(id: string): Promise<JobRecord> {
    return this.call(`/v1/immunizations/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
  }

  edit(id: string, body: EditRequest): Promise<JobRecord<EditResult>> {
    return this.call(`/v1/immunizations/${encodeURIComponent(id)}/edits`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json' },
    });
  }

  check(id: string, purifications: string[]): Promise<JobRecord<CheckResult>> {
    return this.call(`/v1/immunizations/${encodeURIComponent(id)}/checks`, {
      method: 'POST',
      body: JSON.stringify({ purifications }),
      headers: { 'Content-Type': 'application/json' },
    });
  }
}

interface WatchHandlers<R> {
  record(rec: JobRecord<R>): void;
  progress(p: Progress): void;
  end(rec: JobRecord<R>): void;
  /** The job cannot be followed any more (gone, or the key refused); not called for lost connections. */
  lost(err: Error): void;
  /**
   * The service cannot be reached (restarting, network down): the watch keeps retrying, the next
   * try in `retryMs` (null: the stream reconnects by itself); `back()` is called when it answers again.
   */
  offline?(err: Error, retryMs: number | null): void;
  back?(): void;
}

interface Watch {
  close(): void;
}

/** The wait before the n-th retry (n ≥ 1) after a lost connection: 1, 2, 4, 8 s, then every 10 s. */
function backoffMs(n: number): number {
  return Math.min(10_000, 1000 * 2 ** Math.max(0, n - 1));
}

/** Errors that say the service is unreachable or restarting, not that the job is gone. */
function transient(e: unknown): boolean {
  return !(e instanceof ApiError) || e.status === 0 || e.status === 429 || e.status >= 500;
}

/**
 * Follows a job over its SSE stream (docs/api.md: the first event is always the current record;
 * `end` is terminal). If the stream breaks, EventSource reconnects by itself; after repeated
 * failures it falls back to polling the record, and while the service cannot be reached it keeps
 * polling with a growing wait (`backoffMs`) and says so (`offline`): a restarted server finishes
 * the job it had accepted, and the page must see that without a reload.
 */
function watchJob<R>(api: Api, rec: JobRecord<R>, on: WatchHandlers<R>): Watch {
  let closed = false;
  let es: EventSource | null = null;
  let poll: ReturnType<typeof setTimeout> | null = null;
  let failures = 0;
  let offline = 0;
  const finish = (r: JobRecord<R>): void => {
    if (closed) return;
    closed = true;
    es?.close();
    if (poll) clearTimeout(poll);
    on.end(r);
  };
  const parse = <T>(ev: MessageEvent): T | null => {
    try {
      return JSON.parse(String(ev.data)) as T;
    } catch {
      return null;
    }
  };
  const startPolling = (): void => {
    const tick = async (): Promise<void> => {
      if (closed) return;
      let wait = 1000;
      try {
        const r = await api.get<R>(rec.links.self);
        if (closed) return;
        if (offline > 0) on.back?.();
        offline = 0;
        if (r.status === 'completed' || r.status === 'failed' || r.status === 'canceled') {
          finish(r);
          return;
        }
        on.record(r);
        if (r.progress) on.progress(r.progress);
      } catch (e) {
        if (closed) return;
        if (!transient(e)) {
          closed = true;
          on.lost(e as Error);
          return;
        }
        wait = backoffMs(++offline);
        on.offline?.(e as Error, wait);
      }
      poll = setTimeout(() => void tick(), wait);
    };
    void tick();
  };
  if (typeof EventSource === 'undefined') {
    startPolling();
    return {
      close: () => {
        closed = true;
        if (poll) clearTimeout(poll);
      },
    };
  }
  es = new EventSource(rec.links.events);
  const answered = (): void => {
    failures = 0;
    if (offline > 0) on.back?.();
    offline = 0;
  };
  es.addEventListener('status', (ev) => {
    const r = parse<JobRecord<R>>(ev as MessageEvent);
    if (r && !closed) {
      answered();
      on.record(r);
      if (r.progress) on.progress(r.progress);
    }
  });
  es.addEventListener('progress', (ev) => {
    const p = parse<Progress>(ev as MessageEvent);
    if (p && !closed) {
      answered();
      on.progress(p);
    }
  });
  es.addEventListener('end', (ev) => {
    const r = parse<JobRecord<R>>(ev as MessageEvent);
    if (r) finish(r);
  });
  es.addEventListener('error', () => {
    if (closed) return;
    // Said at once: the last progress shown (and its time left) is no longer current.
    offline = Math.max(offline, 1);
    on.offline?.(new Error('the progress stream broke'), null);
    if (++failures >= 3 || es?.readyState === EventSource.CLOSED) {
      es?.close();
      es = null;
      failures = 0;
      startPolling();
    }
  });
  return {
    close: () => {
      closed = true;
      es?.close();
      if (poll) clearTimeout(poll);
    },
  };
}
