"""posits.train: training data, Keras models, hyperopt search, ONNX export and evaluation.

Needs the training extra: pip install 'posits[train]'.
"""
