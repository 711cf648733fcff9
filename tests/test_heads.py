"""Output heads: how the model's output becomes class scores, probabilities, predictions and log-odds,
whatever shape it has (one logit, softmax classes, multi-label attributes, tuples and dicts)."""

import math

import pytest
import torch

from reportgen.errors import InputError
from reportgen.explain.heads import ExplainedModel, Head, OutputChoice, choose_head, choose_output, resolve_target_class

CELEBA = ["5_o_Clock_Shadow", "Male", "Smiling", "Young"]


def test_one_output_is_a_binary_sigmoid_whose_class_1_is_the_logit():
    head = choose_head(None, 1)
    assert (head.kind, head.classes, head.binary, head.source) == ("sigmoid", 2, True, "automatic")
    logits = torch.tensor([[2.0], [-1.0]])
    scores = head.scores(logits)
    assert scores.tolist() == [[-2.0, 2.0], [1.0, -1.0]]
    probabilities = head.probabilities(scores)
    assert probabilities[0, 1] == pytest.approx(1 / (1 + math.exp(-2)))
    assert probabilities[0, 0] + probabilities[0, 1] == pytest.approx(1.0)  # not a softmax of one logit (always 1)
    predicted, confidence = head.predictions(scores)
    assert predicted.tolist() == [1, 0]
    assert confidence[1] == pytest.approx(1 / (1 + math.exp(-1)))


def test_celeba_annotations_with_as_many_attributes_as_outputs_make_a_multi_label_head():
    head = choose_head(None, 4, "celeba", CELEBA)
    assert head.multi_label and head.class_names == tuple(CELEBA)
    assert "CelebA" in head.reason
    # The same model on a CSV, or a CelebA file with other columns, stays softmax unless asked.
    assert choose_head(None, 4, "csv", CELEBA).kind == "softmax"
    assert choose_head(None, 4, "celeba", CELEBA[:3]).kind == "softmax"
    forced = choose_head("sigmoid", 4, "csv", ["a", "b"])
    assert forced.multi_label and forced.source == "option" and forced.class_names is None
    # A CSV whose label columns happen to be as many as the outputs does not name them.
    assert choose_head("sigmoid", 2, "csv", ["task", "protected"]).class_names is None
    assert choose_head("sigmoid", 4, "celeba", CELEBA).class_names == tuple(CELEBA)


def test_multi_label_predictions_are_per_attribute_at_probability_one_half():
    head = choose_head(None, 4, "celeba", CELEBA)
    scores = torch.tensor([[3.0, -2.0, 0.5, -0.1]])
    predicted, confidence = head.predictions(scores, explained=1)
    assert predicted.tolist() == [0]  # "Male" absent
    assert confidence[0] == pytest.approx(1 - 1 / (1 + math.exp(2)))
    assert head.attribute_predictions(scores).tolist() == [[1, 0, 1, 0]]
    # independent probabilities: they need not sum to one
    assert float(head.probabilities(scores).sum()) != pytest.approx(1.0)
    with pytest.raises(ValueError):
        head.predictions(scores)


def test_log_odds_do_not_saturate():
    softmax = Head("softmax", 3)
    scores = torch.tensor([[30.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    targets = torch.tensor([0, 1])
    log_odds = softmax.log_odds(scores, targets)
    probabilities = softmax.probabilities(scores)
    # p = 0.99999999... is 1.0 in float32, but its log-odds are still finite and exact.
    assert probabilities[0, 0] == pytest.approx(1.0)
    assert log_odds[0] == pytest.approx(30.0 - math.log(math.exp(1.0) + 1.0), rel=1e-5)
    p = float(probabilities[1, 1])
    assert log_odds[1] == pytest.approx(math.log(p / (1 - p)), rel=1e-5)
    sigmoid = Head("sigmoid", 1)
    assert sigmoid.log_odds(sigmoid.scores(torch.tensor([[4.0]])), torch.tensor([0])).item() == -4.0


def test_softmax_over_one_output_is_refused():
    with pytest.raises(InputError, match="always 1"):
        choose_head("softmax", 1)
    with pytest.raises(InputError, match="--head 'tanh'"):
        choose_head("tanh", 2)


@pytest.mark.parametrize("value, expected", [(None, None), (0, 0), ("1", 1), (1, 1)])
def test_target_class_indices(value, expected):
    assert resolve_target_class(value, Head("softmax", 2)) == expected


def test_target_class_by_attribute_name_and_default_from_the_target_column():
    head = choose_head(None, 4, "celeba", CELEBA)
    assert resolve_target_class("Smiling", head) == 2
    assert resolve_target_class(None, head, target="Young") == 3
    with pytest.raises(InputError, match="did you mean 'Smiling'"):
        resolve_target_class("smiling", head)
    with pytest.raises(InputError, match="multi-label model has no single predicted class"):
        resolve_target_class(None, head, target="task")
    with pytest.raises(InputError, match="classes 0 to 3"):
        resolve_target_class(4, head)
    with pytest.raises(InputError, match="binary sigmoid model explains class 1"):
        resolve_target_class(2, choose_head(None, 1))
    with pytest.raises(InputError, match="class names are known only"):
        resolve_target_class("Smiling", Head("softmax", 2))


def test_tuple_and_dict_outputs_pick_the_scores():
    logits, embedding = torch.zeros(2, 3), torch.zeros(2, 8)
    choice = choose_output((logits, embedding))
    assert choice.key == 0 and "first tensor" in choice.description
    assert choose_output((logits, embedding), "1").pick((logits, embedding)) is embedding
    assert choose_output({"embedding": embedding, "logits": logits}).key == "logits"
    assert choose_output({"scores": logits}).key == "scores"
    assert choose_output([None, logits]).key == 1
    assert choose_output(logits) == OutputChoice()


@pytest.mark.parametrize("output, wanted, message", [
    ((torch.zeros(1, 2),), "3", "give an index 0 to 0"),
    ({"a": torch.zeros(1, 2), "b": torch.zeros(1, 2)}, None, "without a 'logits' entry"),
    ({"logits": torch.zeros(1, 2)}, "logit", "did you mean 'logits'"),
    (torch.zeros(1, 2), "0", "returns one tensor"),
    ((None, "text"), None, "no tensor in it"),
    ("text", None, "the model's output is a str"),
])
def test_unreadable_outputs_are_one_line_errors(output, wanted, message):
    with pytest.raises(InputError, match=message):
        choose_output(output, wanted)


def test_explained_model_gives_the_heads_scores_with_gradients():
    torch.manual_seed(0)
    inner = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1))

    class Pair(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x), x.mean()

    model = ExplainedModel(Pair(), choose_output((torch.zeros(1, 1), 0)), choose_head(None, 1))
    x = torch.randn(2, 3, 2, 2, requires_grad=True)
    scores = model(x)
    assert scores.shape == (2, 2)
    assert torch.allclose(scores[:, 0], -scores[:, 1])
    scores[:, 1].sum().backward()
    assert x.grad.abs().sum() > 0
