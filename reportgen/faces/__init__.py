"""Stage 2, faces: each image decoded, its face and 68 landmarks found, and its named regions drawn.

    images.py     decode and prepare images (worker processes), a bad image recorded, never fatal
    landmarks.py  dlib face detection and the 68 landmarks, with a cache on disk
    regions.py    the region ids and their polygons; the label image in model-input pixels
    canonical.py  alignment to the mean face (the canonical face behind the mean map)
"""
