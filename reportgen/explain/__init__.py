"""Stage 3, explain: the model's output as evidence, and a map per image of where that evidence comes from.

    methods.py       the methods as facts (id, name, needs a layer, units, defaults); no torch
    attribution.py   one class per method (Grad-CAM, HiResCAM, integrated gradients, occlusion, region ablation)
    heads.py         which output to explain and how: softmax or sigmoid, a tuple's or dict's tensor
    layer_grid.py    a layer's output as a grid over the image (conv maps, transformer tokens, channels last)
    verification.py  face verification: the similarity of two faces' embeddings as the output explained
    similarity.py    verification quality counts (torch-free: the results read it)
    check_passes.py  the model passes behind the trust checks (deletion curves, randomisation cascade)
"""
