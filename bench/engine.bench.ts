/**
 * Engine overhead. (a) What one tiny operator costs when called from TypeScript, layer by layer:
 * a no-op N-API call, the raw boxed `native.call`, and the Tensor method with its dispose (the
 * C++ floor is measured by bench/cpp/convnet_bench.cpp). (b) One forward+backward step of a
 * 4-layer 3×3 conv net (3→128→128→128→128, relu, 256×256, batch 1, float32), the same network
 * bench/cpp/convnet_bench.cpp runs in C++, so scripts/bench.mjs can print TS/C++.
 */
import { native } from '../src/torch/native.js';
import { F, grad, manualSeed, randn, scope, tensor, zeros, type Tensor } from '../src/torch/index.js';
import { quick, runBench, stepCount, summarize, timeCalls, timeSteps } from './harness.js';

// 100k timed calls (50 batches of 2,000) after 10k warm-up; --quick: 20k (20 × 1,000).
const BATCHES = quick ? 20 : 50;
const PER_BATCH = quick ? 1000 : 2000;
const WARMUP_CALLS = quick ? 2000 : 10000;

function callCase(name: string, what: string, make: () => () => void) {
  return {
    name,
    run: () => {
      const call = make();
      return {
        what,
        calls: BATCHES * PER_BATCH,
        ...summarize(timeCalls(call, BATCHES, PER_BATCH, WARMUP_CALLS), 'usPerCall'),
      };
    },
  };
}

/** The conv net's seeded parameters and input; C++ makes the same ones (bit-identical loss). */
export function convnetSetup(size: number): { x: Tensor; params: Tensor[]; ws: Tensor[]; bs: Tensor[] } {
  manualSeed(0);
  const chans = [3, 128, 128, 128, 128];
  const ws: Tensor[] = [];
  const bs: Tensor[] = [];
  for (let i = 0; i < 4; i++) {
    const fanIn = chans[i]! * 9;
    ws.push(scope(() => randn([chans[i + 1]!, chans[i]!, 3, 3]).mul(Math.sqrt(2 / fanIn))).requiresGrad_());
    bs.push(zeros([chans[i + 1]!]).requiresGrad_());
  }
  const x = randn([1, 3, size, size]).requiresGrad_();
  return { x, ws, bs, params: [...ws, ...bs] };
}

/** One step: forward, loss = mean(out²), torch.autograd.grad to the input, weights and biases. */
export function convnetStep(net: { x: Tensor; ws: Tensor[]; bs: Tensor[]; params: Tensor[] }): number {
  return scope(() => {
    let h = net.x;
    for (let i = 0; i < 4; i++) h = F.conv2d(h, net.ws[i]!, net.bs[i]!, { padding: 1 }).relu();
    const loss = h.square().mean();
    grad(loss, [net.x, ...net.params]);
    return loss.item();
  });
}

/** A case's set-up: a 1-element float32 tensor `x`, and the call that runs `op(x)`. */
function onOneElement(op: (x: Tensor) => void): () => () => void {
  return () => {
    const x = tensor([1]);
    return () => op(x);
  };
}

await runBench([
  callCase('napi_noop', 'native.isGradEnabled(): one N-API call that reads a thread-local flag', () => () => {
    native.isGradEnabled();
  }),
  callCase(
    'native_call_add',
    'native.call(aten::add.Scalar, h, 1, 1) + native.dispose: N-API + schema-driven argument conversion + boxed dispatch + handle creation/free',
    () => {
      const x = tensor([1]);
      const id = native.op('aten::add', 'Scalar');
      const h = x.handle;
      return () => {
        native.dispose(native.call(id, h, 1, 1) as typeof h);
      };
    },
  ),
  callCase(
    'ts_add_dispose',
    'x.add(1) then .dispose() on a 1-element float32 tensor: the full TypeScript path',
    onOneElement((x) => x.add(1).dispose()),
  ),
  callCase(
    'ts_add_native_dispose',
    "x.add(1) freed by native.dispose(t.handle): the Tensor wrapper without Tensor.dispose()'s bookkeeping (it reads dtype, shape and device to describe the tensor in later errors)",
    onOneElement((x) => native.dispose(x.add(1).handle)),
  ),
  callCase(
    'ts_add_scope',
    'scope(() => x.add(1)): the same op freed by a scope (how model code frees temporaries)',
    onOneElement((x) => {
      scope(() => {
        x.add(1);
      });
    }),
  ),
  {
    name: 'convnet_256_ts',
    run: () => {
      const size = 256;
      const net = convnetSetup(size);
      let loss = NaN;
      const samples = timeSteps(
        () => {
          loss = convnetStep(net);
        },
        stepCount(10, 3),
        quick ? 1 : 2,
      );
      return {
        what: 'forward+backward of conv3x3(3→128)-relu, 3× conv3x3(128→128)-relu, loss=mean(out²), grad to input+weights+biases',
        size,
        batch: 1,
        dtype: 'float32',
        loss,
        ...summarize(samples, 'msPerStep', { keepSamples: true }),
      };
    },
  },
]);
