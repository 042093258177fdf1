"""pyg_fer.engine.optim: each optimiser name builds that optimiser with the given settings."""

import pytest
import torch

from pyg_fer.engine.optim import build_optimizer


def test_each_name_builds_its_optimiser_with_its_settings():
    params = [torch.nn.Parameter(torch.zeros(2))]
    adamw = build_optimizer("adamw", params, lr=0.1, weight_decay=0.05, betas=(0.8, 0.9))
    assert type(adamw) is torch.optim.AdamW  # decoupled decay, not Adam's L2 term
    group = adamw.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["betas"]) == (0.1, 0.05, (0.8, 0.9))
    assert type(build_optimizer("adam", params, lr=0.1)) is torch.optim.Adam
    sgd = build_optimizer("sgd", params, lr=0.1, momentum=0.5, nesterov=True)
    assert type(sgd) is torch.optim.SGD
    assert (sgd.param_groups[0]["momentum"], sgd.param_groups[0]["nesterov"]) == (0.5, True)
    with pytest.raises(ValueError, match="got no parameters"):
        build_optimizer("sgd", [], lr=0.1)
