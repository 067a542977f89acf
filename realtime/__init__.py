"""posits.realtime: the live pipeline (capture, MediaPipe 2D, ONNX lifter + LSTM, view, outputs).

Runtime only: never imports TensorFlow.
"""


def __getattr__(name):          # lazy: `from posits.realtime import lift_sequence`
    if name == "lift_sequence":
        from .lift import lift_sequence
        return lift_sequence
    raise AttributeError(name)
