"""ADetailer's detectors as YOLOv8 ONNX files (`yolo export model=face_yolov8n.pt format=onnx`), run with
onnxruntime: ultralytics' letterbox, confidence filter, per-class NMS and box scaling; -seg masks too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import numpy as np
from PIL import Image, ImageDraw

from openesd.errors import ModelError
from openesd.generation.types import ModelFiles

MODEL_TYPE = "ADetailer"
PAD_VALUE = 114  # ultralytics' letterbox grey
IOU = 0.7  # ultralytics' predict default, which ADetailer keeps
MAX_DET = 300
MAX_WH = 7680  # ultralytics' per-class box offset for one NMS over every class


@dataclass
class Detection:
    """One detected object: its box (x1, y1, x2, y2 in image pixels), score, class and mask ("L", image size)."""

    box: list[float]
    confidence: float
    cls: int
    mask: Image.Image


def find_model(models: ModelFiles, name: str) -> Path:
    """`ad_model` by file name or stem: `face_yolov8n.pt` is the uploaded `face_yolov8n.onnx`."""
    files = [Path(p) for p in models.get(MODEL_TYPE, [])]
    stem = Path(name).stem
    for path in files:
        if name == path.name or stem == path.stem:
            if path.suffix.lower() != ".onnx":
                raise ModelError(
                    f"ADetailer model {path.name} is not an ONNX file; export it with "
                    f"`yolo export model={stem}.pt format=onnx` and upload {stem}.onnx"
                )
            return path
    available = ", ".join(p.name for p in files) or "none"
    raise ModelError(
        f"ADetailer model {name!r} is not uploaded: upload {stem}.onnx (exported with `yolo export "
        f"model={stem}.pt format=onnx`) as checkpoint type {MODEL_TYPE!r}; this job's {MODEL_TYPE} files: {available}"
    )


class YoloDetector:
    """One uploaded YOLOv8 detection or segmentation model."""

    def __init__(self, path: Path):
        import onnxruntime as ort  # type: ignore[import-untyped]

        providers = ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise ModelError(f"ADetailer model file {path.name} cannot be loaded by onnxruntime: {exc}") from exc
        self.name = path.name
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.half = first.type == "tensor(float16)"
        h, w = first.shape[2:4] if len(first.shape) == 4 else (None, None)
        self.size = (h if isinstance(h, int) else 640, w if isinstance(w, int) else 640)

    def detect(self, image: Image.Image, confidence: float) -> list[Detection]:
        """The objects scoring above `confidence`, best first, as ultralytics' predict returns them."""
        rgb = np.asarray(image.convert("RGB"))
        tensor, gain, pad = letterbox(rgb, self.size)
        batch = (tensor.transpose(2, 0, 1)[None] / 255.0).astype(np.float16 if self.half else np.float32)
        outputs = self.session.run(None, {self.input_name: batch})
        return self._decode(outputs, confidence, image.size, gain, pad)

    def _decode(
        self, outputs: list[np.ndarray], confidence: float, size: tuple[int, int], gain: float, pad: tuple[int, int]
    ) -> list[Detection]:
        pred = np.asarray(outputs[0], dtype=np.float32)
        if pred.ndim != 3:
            raise ModelError(f"ADetailer model {self.name} is not a YOLOv8 export: output shape {pred.shape}")
        pred = pred[0].T  # (N, 4 + classes [+ mask coefficients])
        protos = np.asarray(outputs[1], dtype=np.float32)[0] if len(outputs) > 1 else None
        coefficients = protos.shape[0] if protos is not None else 0
        classes = pred.shape[1] - 4 - coefficients
        if classes < 1:
            raise ModelError(f"ADetailer model {self.name} is not a YOLOv8 export: {pred.shape[1]} values per box")
        scores = pred[:, 4 : 4 + classes]
        best, cls = scores.max(1), scores.argmax(1)
        keep = np.flatnonzero(best > confidence)  # ultralytics keeps scores strictly above conf
        boxes = xywh_to_xyxy(pred[keep, :4])
        order = nms(boxes + cls[keep, None] * MAX_WH, best[keep], IOU)[:MAX_DET]
        keep, boxes = keep[order], boxes[order]
        masks = self._masks(pred[keep, 4 + classes :], protos, boxes, size, gain, pad) if protos is not None else None
        found = []
        for i, index in enumerate(keep):
            box = scale_box(boxes[i], gain, pad, size)
            mask = masks[i] if masks is not None else box_mask(box, size)
            found.append(Detection(box, float(best[index]), int(cls[index]), mask))
        return found

    def _masks(
        self,
        coefficients: np.ndarray,
        protos: np.ndarray,
        boxes: np.ndarray,
        size: tuple[int, int],
        gain: float,
        pad: tuple[int, int],
    ) -> list[Image.Image]:
        """ultralytics' process_mask: prototype mix, bilinear to the input size, above 0, cut to the box; then
        the letterbox padding is cut away and the rest resized to the image (ADetailer's mask_to_pil)."""
        import cv2

        count, mh, mw = protos.shape
        ih, iw = self.size
        logits = (coefficients @ protos.reshape(count, -1)).reshape(-1, mh, mw)
        cols, rows = np.arange(iw, dtype=np.float32), np.arange(ih, dtype=np.float32)
        left, top = pad
        width, height = max(round(size[0] * gain), 1), max(round(size[1] * gain), 1)
        masks = []
        for logit, (x1, y1, x2, y2) in zip(logits, boxes):
            full = cv2.resize(logit.astype(np.float32), (iw, ih), interpolation=cv2.INTER_LINEAR) > 0
            inside = ((cols >= x1) & (cols < x2))[None, :] & ((rows >= y1) & (rows < y2))[:, None]
            binary = (full & inside).astype(np.uint8) * 255
            crop = Image.fromarray(np.ascontiguousarray(binary[top : top + height, left : left + width]), "L")
            masks.append(crop.resize(size))
        return masks


def letterbox(rgb: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, tuple[int, int]]:
    """ultralytics' LetterBox(auto=False): scale to fit, centre, pad with grey 114; (image, gain, (left, top))."""
    import cv2

    h, w = rgb.shape[:2]
    th, tw = size
    gain = min(th / h, tw / w)
    nw, nh = int(round(w * gain)), int(round(h * gain))
    dw, dh = (tw - nw) / 2, (th - nh) / 2
    if (w, h) != (nw, nh):
        rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    padded = cv2.copyMakeBorder(rgb, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return padded, gain, (left, top)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    out[:, 0], out[:, 1] = boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2
    out[:, 2], out[:, 3] = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS as torchvision's: best first, dropping boxes that overlap a kept one by more than `iou`."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    while order.size:
        i, rest = order[0], order[1:]
        kept.append(int(i))
        w = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        overlap = w * h / (areas[i] + areas[rest] - w * h)
        order = rest[overlap <= iou]
    return np.array(kept, dtype=np.int64)


def scale_box(box: np.ndarray, gain: float, pad: tuple[int, int], size: tuple[int, int]) -> list[float]:
    """ultralytics' scale_boxes: from the letterboxed input back to the image, clipped to it; each axis by
    its own gain, the rounded side over the image's, as the letterbox rounded them."""
    left, top = pad
    w, h = size
    gain_x, gain_y = max(round(w * gain), 1) / w, max(round(h * gain), 1) / h
    x1, x2 = (float(np.clip((v - left) / gain_x, 0, w)) for v in (box[0], box[2]))
    y1, y2 = (float(np.clip((v - top) / gain_y, 0, h)) for v in (box[1], box[3]))
    return [x1, y1, x2, y2]


def box_mask(box: list[float], size: tuple[int, int]) -> Image.Image:
    """ADetailer's create_mask_from_bbox: the box filled white on black (PIL's own rounding)."""
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask
