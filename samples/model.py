"""The planted-cue classifier: class 1 = a lime-green sticker is painted on the forehead.

Weights: weights.pt (a state_dict). Grad-CAM layer: conv4. Input: transform.py (128x128, [-1, 1]).
"""

from reportgen.synthetic import SmallFaceNet

model = SmallFaceNet()
