/**
 * The mask brush: paint the region to protect on the photo (as photoguard's demo lets one mark the
 * people to keep), with undo and clear, by pointer (mouse, touch, pen) or keyboard. The exported
 * mask follows the API's convention (docs/attacks.md "Masks"): white where the perturbation may
 * go, black where the photo stays exactly as it was, at the photo's own size.
 */
export { MaskEditor };

interface Stroke {
  r: number;
  pts: { x: number; y: number }[];
}

class MaskEditor {
  private strokes: Stroke[] = [];
  private current: Stroke | null = null;
  private cursor: { x: number; y: number };
  private showCursor = false;
  private spaceDown = false;
  private readonly overlay: HTMLCanvasElement;
  /** Brush diameter in screen pixels (converted to photo pixels when a stroke starts). */
  brushPx = 32;
  onChange: () => void = () => {};

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly image: CanvasImageSource & { width: number; height: number },
  ) {
    canvas.width = image.width;
    canvas.height = image.height;
    this.overlay = document.createElement('canvas');
    this.overlay.width = image.width;
    this.overlay.height = image.height;
    this.cursor = { x: image.width / 2, y: image.height / 2 };
    canvas.addEventListener('pointerdown', this.down);
    canvas.addEventListener('pointermove', this.move);
    canvas.addEventListener('pointerup', this.up);
    canvas.addEventListener('pointercancel', this.up);
    canvas.addEventListener('pointerleave', this.leave);
    canvas.addEventListener('keydown', this.key);
    canvas.addEventListener('keyup', this.keyUp);
    canvas.addEventListener('focus', this.focus);
    canvas.addEventListener('blur', this.blur);
    this.render();
  }

  destroy(): void {
    const c = this.canvas;
    c.removeEventListener('pointerdown', this.down);
    c.removeEventListener('pointermove', this.move);
    c.removeEventListener('pointerup', this.up);
    c.removeEventListener('pointercancel', this.up);
    c.removeEventListener('pointerleave', this.leave);
    c.removeEventListener('keydown', this.key);
    c.removeEventListener('keyup', this.keyUp);
    c.removeEventListener('focus', this.focus);
    c.removeEventListener('blur', this.blur);
  }

  get empty(): boolean {
    return this.strokes.length === 0;
  }
  get canUndo(): boolean {
    return this.strokes.length > 0;
  }

  undo(): void {
    this.strokes.pop();
    this.redrawOverlay();
    this.onChange();
  }
  clear(): void {
    this.strokes = [];
    this.redrawOverlay();
    this.onChange();
  }

  /** Fraction of the photo's pixels inside the mask. */
  coverage(): number {
    if (this.empty) return 0;
    const d = this.maskCanvas().getContext('2d')!.getImageData(0, 0, this.image.width, this.image.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if ((d[i] ?? 0) >= 128) n++;
    return n / (d.length / 4);
  }

  /** The mask at the photo's size, binary (no anti-aliased edge: the server thresholds at 0.5 anyway). */
  maskCanvas(): HTMLCanvasElement {
    const c = document.createElement('canvas');
    c.width = this.image.width;
    c.height = this.image.height;
    const g = c.getContext('2d')!;
    g.fillStyle = '#000';
    g.fillRect(0, 0, c.width, c.height);
    this.paint(g, '#fff');
    const im = g.getImageData(0, 0, c.width, c.height);
    const d = im.data;
    for (let i = 0; i < d.length; i += 4) {
      const v = (d[i] ?? 0) >= 128 ? 255 : 0;
      d[i] = v;
      d[i + 1] = v;
      d[i + 2] = v;
      d[i + 3] = 255;
    }
    g.putImageData(im, 0, 0);
    return c;
  }

  /** PNG of the mask, or null when nothing is painted (the whole photo is protected). */
  toBlob(): Promise<Blob | null> {
    if (this.empty) return Promise.resolve(null);
    return new Promise((resolve) => this.maskCanvas().toBlob((b) => resolve(b), 'image/png'));
  }

  private scale(): number {
    const w = this.canvas.getBoundingClientRect().width;
    return w > 0 ? this.image.width / w : 1;
  }

  private radius(): number {
    return Math.max(0.5, (this.brushPx / 2) * this.scale());
  }

  private toImage(ev: PointerEvent): { x: number; y: number } {
    const r = this.canvas.getBoundingClientRect();
    return {
      x: ((ev.clientX - r.left) / r.width) * this.image.width,
      y: ((ev.clientY - r.top) / r.height) * this.image.height,
    };
  }

  private paint(g: CanvasRenderingContext2D, color: string): void {
    g.save();
    g.strokeStyle = color;
    g.fillStyle = color;
    g.lineCap = 'round';
    g.lineJoin = 'round';
    for (const s of this.strokes) this.paintStroke(g, s);
    g.restore();
  }

  private paintStroke(g: CanvasRenderingContext2D, s: Stroke): void {
    const [p0] = s.pts;
    if (!p0) return;
    g.beginPath();
    g.arc(p0.x, p0.y, s.r, 0, Math.PI * 2);
    g.fill();
    if (s.pts.length > 1) {
      g.lineWidth = s.r * 2;
      g.beginPath();
      g.moveTo(p0.x, p0.y);
      for (const p of s.pts.slice(1)) g.lineTo(p.x, p.y);
      g.stroke();
    }
  }

  private redrawOverlay(): void {
    const g = this.overlay.getContext('2d')!;
    g.clearRect(0, 0, this.overlay.width, this.overlay.height);
    // Opaque strokes, then the whole layer drawn translucent: overlapping strokes do not darken.
    this.paint(g, '#1e6eff');
    this.render();
  }

  private render(): void {
    const g = this.canvas.getContext('2d')!;
    g.clearRect(0, 0, this.canvas.width, this.canvas.height);
    g.drawImage(this.image, 0, 0);
    g.save();
    g.globalAlpha = 0.5;
    g.drawImage(this.overlay, 0, 0);
    g.restore();
    if (this.showCursor) {
      const r = this.radius();
      g.save();
      g.lineWidth = Math.max(1, this.scale());
      g.strokeStyle = '#fff';
      g.beginPath();
      g.arc(this.cursor.x, this.cursor.y, r, 0, Math.PI * 2);
      g.stroke();
      g.strokeStyle = '#000';
      g.setLineDash([3 * this.scale(), 3 * this.scale()]);
      g.beginPath();
      g.arc(this.cursor.x, this.cursor.y, r, 0, Math.PI * 2);
      g.stroke();
      g.restore();
    }
  }

  private begin(p: { x: number; y: number }): void {
    this.current = { r: this.radius(), pts: [p] };
    this.strokes.push(this.current);
    this.redrawOverlay();
  }

  private extend(p: { x: number; y: number }): void {
    if (!this.current) return;
    this.current.pts.push(p);
    this.redrawOverlay();
  }

  private end(): void {
    if (!this.current) return;
    this.current = null;
    this.onChange();
  }

  private readonly down = (ev: PointerEvent): void => {
    if (ev.button !== 0) return;
    ev.preventDefault();
    this.canvas.setPointerCapture(ev.pointerId);
    this.cursor = this.toImage(ev);
    this.begin(this.cursor);
  };

  private readonly move = (ev: PointerEvent): void => {
    this.cursor = this.toImage(ev);
    this.showCursor = true;
    if (this.current) this.extend(this.cursor);
    else this.render();
  };

  private readonly up = (): void => {
    this.end();
  };
  private readonly leave = (): void => {
    if (!this.current && document.activeElement !== this.canvas) {
      this.showCursor = false;
      this.render();
    }
  };
  private readonly focus = (): void => {
    this.showCursor = true;
    this.render();
  };
  private readonly blur = (): void => {
    this.spaceDown = false;
    this.end();
    this.showCursor = false;
    this.render();
  };

  private readonly key = (ev: KeyboardEvent): void => {
    if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 'z') {
      ev.preventDefault();
      this.undo();
      return;
    }
    const step = Math.max(1, this.radius()) * (ev.shiftKey ? 3 : 1);
    const moves: Record<string, [number, number]> = {
      ArrowLeft: [-step, 0],
      ArrowRight: [step, 0],
      ArrowUp: [0, -step],
      ArrowDown: [0, step],
    };
    const m = moves[ev.key];
    if (m) {
      ev.preventDefault();
      this.cursor = {
        x: Math.min(this.image.width, Math.max(0, this.cursor.x + m[0])),
        y: Math.min(this.image.height, Math.max(0, this.cursor.y + m[1])),
      };
      if (this.spaceDown) this.extend(this.cursor);
      else this.render();
      return;
    }
    if (ev.key === ' ' || ev.key === 'Enter') {
      ev.preventDefault();
      if (!this.spaceDown) {
        this.spaceDown = true;
        this.begin(this.cursor);
      }
    }
  };

  private readonly keyUp = (ev: KeyboardEvent): void => {
    if (ev.key === ' ' || ev.key === 'Enter') {
      this.spaceDown = false;
      this.end();
    }
  };
}
