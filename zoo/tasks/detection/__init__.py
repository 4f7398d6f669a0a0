"""The detection task: letterbox, decode + NMS, predict, COCO val, the training task, the export graph."""
