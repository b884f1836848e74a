"""The int8 speed choice of ExecuTorch exports (formats/executorch/speed.py): op kinds that
ran slower in int8 than in fp32 on this CPU are kept float when the program is then faster
and still agrees with fp32. The logic, with the runtime's timings and profiles stubbed; an
export runs it for real in tests/test_int8_export.py."""

from __future__ import annotations

import pytest

from casvit_deploy.commands.info import _speed_choice_text
from casvit_deploy.formats.executorch import speed
from casvit_deploy.formats.executorch.speed import SPEED_MIN_COSINE, SpeedTrial, choose
from casvit_deploy.runtime.profile import OpProfile


def test_the_fastest_candidate_that_agrees_is_chosen():
    plan, faster, fastest = (SpeedTrial((), 5.0, 1.2, 0.999), SpeedTrial(("depthwise",), 4.0, 1.5, 0.998),
                             SpeedTrial(("depthwise", "multiplies"), 3.0, 2.0, SPEED_MIN_COSINE - 0.01))
    assert choose([plan, faster, fastest]) is faster  # the fastest loses too much agreement
    assert choose([SpeedTrial((), 5.0, 1.2, 0.9), SpeedTrial(("multiplies",), 4.0, 1.5, 0.9)]).extra == ()


def _profile(dw: float, mul: float) -> OpProfile:
    return OpProfile("etdump", 10.0, {"Fully Connected (NC, QS8, QC8W) GEMM": (111, 3.0),
                                      "Convolution (NHWC, QC8) DWConv": (50, dw), "Multiply (ND)": (50, mul)})


@pytest.mark.parametrize("int8_dw, int8_mul, flagged", [(0.9, 0.5, ("depthwise", "multiplies")),
                                                        (0.5, 0.2, ()), (0.9, 0.2, ("depthwise",))])
def test_only_op_kinds_slower_in_int8_are_tried_float(monkeypatch, int8_dw, int8_mul, flagged):
    profiles = {b"fp32": _profile(0.6, 0.3), b"int8": _profile(int8_dw, int8_mul)}
    monkeypatch.setattr(speed, "profile_of", lambda buffer, threads, work: profiles[buffer[:4]])
    monkeypatch.setattr(speed, "threads", lambda: 2)
    monkeypatch.setattr(speed, "time_programs",
                        lambda buffers, shape: [10.0] + [8.0 - i for i in range(1, len(buffers))])
    built = []

    def build(extra):
        built.append(extra)
        return b"int8" + "/".join(extra).encode()

    buffer, choice = speed.choose_program(build, b"fp32", (1, 3, 32, 32), lambda b: 0.999, None, lambda text: None)
    assert built == [()] + ([flagged] if flagged else [])
    assert choice.chosen.extra == flagged and buffer == b"int8" + "/".join(flagged).encode()
    assert choice.kinds["depthwise"] == {"fp32_ms": 0.6, "int8_ms": int8_dw}
    assert [t.extra for t in choice.trials] == [()] + ([flagged] if flagged else [])
    assert choice.trials[0].vs_fp32 == pytest.approx(10.0 / 7.0)
    shown = _speed_choice_text(choice.record())  # casvit info's line
    assert "as planned: 1.43x" in shown and f"kept float for speed: {' + '.join(flagged) or 'nothing more'}" in shown


class _GatedDepthwise:
    """A tiny program with the op kinds the choice is about: a 1x1 conv, a depthwise 3x3
    conv and a gate multiply."""

    @staticmethod
    def build():
        import torch

        class Module(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.pw = torch.nn.Conv2d(3, 16, 1)
                self.dw = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)

            def forward(self, x):
                y = self.pw(x)
                return (self.dw(y) * torch.sigmoid(y)).mean((2, 3))

        torch.manual_seed(0)
        return Module().eval()


def test_the_choice_runs_on_real_programs(tmp_path):
    """Real XNNPACK programs (fp32, int8, int8 with the flagged kinds float): the profiles find
    the depthwise and multiply events, every candidate is timed and scored against fp32 eager,
    and the program returned is the chosen candidate's."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("executorch")
    from casvit_deploy.formats.executorch import pt2e
    from casvit_deploy.formats.executorch.exporter import _lowered
    from casvit_deploy.formats.executorch.options import Delegate
    from casvit_deploy.quantize.targets import keeps_float
    from casvit_deploy.settings import CalibrationMethod

    model = _GatedDepthwise.build()
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1)).numpy()
    sample = (torch.from_numpy(images[:1]),)
    reference = model(torch.from_numpy(images)).detach().numpy()

    def lower(module):
        return _lowered(torch.export.export(module, sample), Delegate.XNNPACK, tmp_path).buffer

    def build(extra):
        program = torch.export.export(model, sample)
        return lower(pt2e.quantize(program, images, 1, CalibrationMethod.MINMAX, keeps_float(extra)))

    fp32 = lower(model)
    for profile in (speed.profile_of(fp32, 1, tmp_path), speed.profile_of(build(()), 1, tmp_path)):
        assert all(any(name in event for event in profile.ops) for name in speed.SPEED_KINDS.values())
    buffer, choice = speed.choose_program(build, fp32, (1, 3, 32, 32),
                                          lambda b: speed.min_cosine(b, images, reference, 1), tmp_path,
                                          lambda text: None)
    assert choice.trials[0].extra == () and all(t.ms > 0 and 0 < t.cosine <= 1 + 1e-6 for t in choice.trials)
    assert choice.chosen is choose(choice.trials)
    assert speed.min_cosine(buffer, images, reference, 1) == pytest.approx(choice.chosen.cosine)
    assert choice.record()["chosen"] == list(choice.chosen.extra) and choice.speed_ratio()["ratio"] > 0
