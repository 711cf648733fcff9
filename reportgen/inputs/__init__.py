"""Stage 1, inputs: what the user gives, read and checked before any image is touched.

    dataset.py     the annotation file: a CSV, CelebA's list_attr_celeba.txt, or a CSV of image pairs
    model.py       the model file and its weights; the layers a map can be taken from
    preprocess.py  the transform (a file, or --image-size/--mean/--std) and the model's input geometry
    run_inputs.py  files or Python objects (a notebook's model, transform, table) resolved into one RunInputs
    config.py      RunConfig: every option with its default, and run.toml
"""
