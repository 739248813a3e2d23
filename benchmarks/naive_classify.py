#!/usr/bin/env python3
"""The per-image script in circulation (seed style), kept as the baseline to beat.

One process per image: load the model, open the image without RGB conversion, resize, invoke,
print the top class as value/255. It is what users run today; do not fix it.
"""

import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

interpreter = Interpreter(model_path=sys.argv[1])
interpreter.allocate_tensors()
detail = interpreter.get_input_details()[0]
height, width = detail["shape"][1:3]
image = Image.open(sys.argv[2]).resize((width, height))
interpreter.set_tensor(detail["index"], np.expand_dims(np.asarray(image), 0))
interpreter.invoke()
scores = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
best = int(np.argmax(scores))
print(best, scores[best] / 255)
