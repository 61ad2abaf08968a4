/**
 * The difference view: (immunized − original) × gain around mid-gray, per channel, so unchanged
 * pixels are gray and the perturbation's pattern shows in colour. Zoom enlarges the canvas by CSS
 * with nearest-neighbour sampling, inside a scrollable box, so single pixels can be inspected.
 */
export { DiffView, MAX_DISPLAY_PX };

/**
 * The largest side the zoomed canvas may have on screen, in CSS pixels. Zoom levels past it stop
 * there: a 1080-pixel photo at 16× "fit" would be a 17,280-pixel element (slow, and beyond what
 * some browsers paint), and 4096 px still shows each pixel of a 1000-pixel photo 4× enlarged.
 */
const MAX_DISPLAY_PX = 4096;

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

  /**
   * Zoom 1 = the whole image fits the box (its width, and its CSS max-height: a tall or square
   * photo is shown whole, not its top part); each level doubles, up to MAX_DISPLAY_PX. Returns the
   * zoom actually used.
   */
  layout(): number {
    const w = Math.max(1, this.canvas.width),
      h = Math.max(1, this.canvas.height);
    const maxH = parseFloat(getComputedStyle(this.box).maxHeight);
    const fit = Math.min(
      Math.max(1, this.box.clientWidth - 4) / w,
      Number.isFinite(maxH) ? Math.max(1, maxH - 4) / h : Infinity,
    );
    const scale = Math.min(fit * this.zoom, MAX_DISPLAY_PX / Math.max(w, h));
    this.canvas.style.width = `${Math.round(w * scale)}px`;
    this.canvas.style.height = `${Math.round(h * scale)}px`;
    return scale / fit;
  }
}
