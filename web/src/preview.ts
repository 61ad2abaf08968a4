/**
 * Live preview of the perturbation's visibility: a detail of the photo at its actual pixels,
 * and the same detail with random ±ε changes on every channel of every protected pixel. Sign
 * noise is what the attack's sign steps tend towards (most pixels end at ±ε), so this is close to
 * the worst visibility of the budget, not of any particular result.
 */
export { EpsPreview };

const CROP = 96;

class EpsPreview {
  private signs: Int8Array;
  private readonly crop: { x: number; y: number; w: number; h: number };
  private readonly base: ImageData;
  private mask: Uint8Array | null = null;

  constructor(
    image: CanvasImageSource & { width: number; height: number },
    private readonly before: HTMLCanvasElement,
    private readonly after: HTMLCanvasElement,
  ) {
    const w = Math.min(CROP, image.width);
    const h = Math.min(CROP, image.height);
    this.crop = { x: Math.floor((image.width - w) / 2), y: Math.floor((image.height - h) / 2), w, h };
    for (const c of [before, after]) {
      c.width = w;
      c.height = h;
    }
    const g = before.getContext('2d')!;
    g.drawImage(image, this.crop.x, this.crop.y, w, h, 0, 0, w, h);
    this.base = g.getImageData(0, 0, w, h);
    // One fixed pattern: moving the slider changes only the intensity, so the eye compares like with like.
    this.signs = new Int8Array(w * h * 3);
    let s = 0x9e3779b9;
    for (let i = 0; i < this.signs.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      this.signs[i] = (s & 1) === 1 ? 1 : -1;
    }
  }

  /** Restrict the preview's changes to the mask (a canvas at the photo's size), or null for all. */
  setMask(mask: HTMLCanvasElement | null): void {
    if (!mask) {
      this.mask = null;
      return;
    }
    const { x, y, w, h } = this.crop;
    const d = mask.getContext('2d')!.getImageData(x, y, w, h).data;
    this.mask = new Uint8Array(w * h);
    for (let i = 0; i < w * h; i++) this.mask[i] = (d[i * 4] ?? 0) >= 128 ? 1 : 0;
  }

  render(eps255: number): void {
    const src = this.base.data;
    const out = new ImageData(this.crop.w, this.crop.h);
    const d = out.data;
    for (let p = 0, n = this.crop.w * this.crop.h; p < n; p++) {
      const on = this.mask ? this.mask[p] === 1 : true;
      for (let c = 0; c < 3; c++) {
        const v = src[p * 4 + c] ?? 0;
        d[p * 4 + c] = on ? Math.min(255, Math.max(0, v + eps255 * (this.signs[p * 3 + c] ?? 0))) : v;
      }
      d[p * 4 + 3] = 255;
    }
    this.after.getContext('2d')!.putImageData(out, 0, 0);
  }
}
