"""ADetailer (Bing-su/adetailer) as its API takes it: read the arguments, detect with a YOLOv8 ONNX model,
build the masks; `tasks/adetailer.py` inpaints each detection."""
