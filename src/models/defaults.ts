import { fileURLToPath } from 'node:url';

/**
 * The models Immunize uses when none is named (DESIGN.md §3): Stable Diffusion v1.5, whose VAE
 * the paper attacks, and its inpainting variant. One home, so the CLI, the service and the
 * evaluation agree.
 */

/** The encoder attack's default: SD v1.5's VAE (its vae/ folder only is downloaded). */
export const DEFAULT_MODEL = 'stable-diffusion-v1-5/stable-diffusion-v1-5';
/** `immunize edit` without a mask, and evaluation's img2img edits. */
export const DEFAULT_IMG2IMG_MODEL = 'stable-diffusion-v1-5/stable-diffusion-v1-5';
/** The diffusion attack's and inpainting edits' default. */
export const DEFAULT_INPAINT_MODEL = 'stable-diffusion-v1-5/stable-diffusion-inpainting';

/**
 * The learned immunizer shipped with Immunize (issue 16; docs/learned.md): G trained against
 * TAEF2, in the repository's weights/ folder (resolved from this compiled file, dist/src/models/).
 */
export const DEFAULT_IMMUNIZER = fileURLToPath(new URL('../../../weights/immunizer-taef2', import.meta.url));
