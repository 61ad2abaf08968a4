/**
 * The difference view: (immunized − original) × gain around mid-gray, per channel, so unchanged
 * pixels are gray and the perturbation's pattern shows in colour. Zoom enlarges the canvas by CSS
 * with nearest-neighbour sampling, inside a scrollable box, so single pixels can be inspected.
 */
export { DiffView };

class DiffView {
  private original: ImageData | null = null;
  private result: ImageData | null = null;
  gain = 8;
  zoom = 1;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly box: HTMLElement,
  ) {}

  set(original: ImageData, result: ImageData): void {
    this.original = original;
    this.result = result;
    this.canvas.width = result.width;
    this.canvas.height = result.height;
    this.render();
  }

  /** Largest per-channel change in 8-bit levels. */
  maxChange(): number {
    if (!this.original || !this.result) return 0;
    const a = this.original.data,
      b = this.result.data;
    let m = 0;
    for (let i = 0; i < b.length; i++) if ((i & 3) !== 3) m = Math.max(m, Math.abs((b[i] ?? 0) - (a[i] ?? 0)));
    return m;
  }

  render(): void {
    if (!this.original || !this.result) return;
    const a = this.original.data,
      b = this.result.data;
    const out = new ImageData(this.result.width, this.result.height);
    const d = out.data;
    for (let i = 0; i < d.length; i += 4) {
      for (let c = 0; c < 3; c++)
        d[i + c] = Math.min(255, Math.max(0, 128 + this.gain * ((b[i + c] ?? 0) - (a[i + c] ?? 0))));
      d[i + 3] = 255;
    }
    this.canvas.getContext('2d')!.putImageData(out, 0, 0);
    this.layout();
  }

  /** Zoom 1 = fit the box's width; each level doubles. */
  layout(): void {
    const fit = Math.max(1, this.box.clientWidth - 4) / Math.max(1, this.canvas.width);
    const w = Math.round(this.canvas.width * fit * this.zoom);
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${Math.round((this.canvas.height * w) / Math.max(1, this.canvas.width))}px`;
  }
}
