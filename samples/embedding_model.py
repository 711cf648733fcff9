"""The verification demo's embedding model: a 16-d embedding trained (reportgen.synthetic.train_embedding)
to tell the two people of the sample images apart by cosine similarity. Weights: embedding_weights.pt."""

from reportgen.synthetic import SmallFaceNet


class SampleEmbedding(SmallFaceNet):
    """SmallFaceNet's trunk with its last layer as a 16-d embedding."""

    def __init__(self):
        super().__init__(num_classes=16)


model = SampleEmbedding()
