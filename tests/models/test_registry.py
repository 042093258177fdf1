import pytest

from pyg_fer.models import create_model, is_model, list_models, register_model


def test_private_names_are_hidden_but_buildable():
    name = "_registry_test_private_model"
    if not is_model(name):

        @register_model
        def _registry_test_private_model(**kwargs):
            import torch.nn as nn

            return nn.Identity()

    assert name not in list_models()
    assert name in list_models(include_private=True)
    assert name in list_models("_registry*", include_private=True)
    assert create_model(name).__class__.__name__ == "Identity"


def test_duplicate_and_unknown_names_raise():
    with pytest.raises(ValueError, match="already registered"):

        @register_model
        def face2nodes(**kwargs):  # noqa: F811 - the point of the test
            return None

    with pytest.raises(ValueError, match="unknown model 'nope'; registered models: .*face2nodes"):
        create_model("nope")


def test_class_names_alone_set_the_number_of_classes():
    model = create_model("resnet18_fer", class_names=["calm", "joy", "anger"], img_size=32)
    assert model.cfg["num_classes"] == 3 and model.fc.out_features == 3
    assert model.cfg["class_names"] == ["calm", "joy", "anger"]
    with pytest.raises(ValueError, match="class_names has 3 entries .* but num_classes=7"):
        create_model("resnet18_fer", class_names=["calm", "joy", "anger"], num_classes=7)
