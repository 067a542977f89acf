"""posits.realtime: the live pipeline (capture, MediaPipe 2D, ONNX lifter + LSTM, view, outputs).

Runtime only: never imports TensorFlow.
"""
