// The img2img source image with an inpaint mask painted over it on a canvas (the WebUI's "Inpaint" tab):
// white strokes on black at the image's own size make the `mask` the worker expects.
import { h } from "../../ui.js";

export function maskEditor() {
  const image = h("img", { class: "mask-image", alt: "Image to change" });
  const canvas = h("canvas", { class: "mask-canvas", "aria-label": "Inpaint mask: paint where the picture should change" });
  const brush = h("input", { type: "range", min: 4, max: 128, value: 32, "aria-label": "Brush size" });
  const clearButton = h("button", { type: "button", id: "mask-clear" }, "Clear mask");
  const stage = h("div", { class: "mask-stage" }, image, canvas);
  const element = h("div", { class: "mask-editor" }, stage,
    h("div", { class: "row" }, h("label", { class: "field inline" }, "Brush", brush), clearButton));
  element.hidden = true;
  let painted = false;
  let last = null;  // the stroke's previous point, or null when the pointer is up

  function point(event) {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * (canvas.width / box.width), (event.clientY - box.top) * (canvas.height / box.height)];
  }
  // A round-capped line from the stroke's previous point, so a fast stroke has no gaps.
  function paint(event) {
    if (!last) return;
    const [x, y] = point(event);
    const context = canvas.getContext("2d");
    context.strokeStyle = "#fff";
    context.lineCap = "round";
    context.lineWidth = Number(brush.value) * (canvas.width / canvas.getBoundingClientRect().width);
    context.beginPath();
    context.moveTo(...last);
    context.lineTo(x, y);
    context.stroke();
    last = [x, y];
    painted = true;
  }
  canvas.addEventListener("pointerdown", (event) => { last = point(event); canvas.setPointerCapture(event.pointerId); paint(event); });
  canvas.addEventListener("pointermove", paint);
  for (const end of ["pointerup", "pointercancel"]) canvas.addEventListener(end, () => { last = null; });
  clearButton.addEventListener("click", () => {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    painted = false;
  });

  return {
    element,
    // Show `dataUrl` (or nothing) and start a new, empty mask.
    setImage(dataUrl) {
      painted = false;
      element.hidden = !dataUrl;
      if (!dataUrl) { image.removeAttribute("src"); return; }
      image.onload = () => { canvas.width = image.naturalWidth; canvas.height = image.naturalHeight; };
      image.src = dataUrl;
    },
    // The mask as a PNG data URL, or null when nothing was painted (plain img2img).
    dataUrl() {
      if (!painted) return null;
      const out = h("canvas", { width: canvas.width, height: canvas.height });
      const context = out.getContext("2d");
      context.fillStyle = "#000";
      context.fillRect(0, 0, out.width, out.height);
      context.drawImage(canvas, 0, 0);
      return out.toDataURL("image/png");
    },
  };
}

export function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// A result image (a signed URL) as a data URL, to send it to img2img.
export async function urlAsDataUrl(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`The image could not be read (HTTP ${response.status})`);
  return readAsDataUrl(await response.blob());
}
