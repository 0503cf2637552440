"""The init-time probe: every upsampler config is found, the Odena/Aitken ordering holds, the
outputs are written, and the score separates checkerboarded image sets from clean ones on decoders the
probe never uses (hold-out)."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from upsample_zoo.data.noise import one_over_f_images
from upsample_zoo.metrics.checkerboard import CheckerboardScore
from upsample_zoo.probe import CONFIG_DIR, NATURAL, main, probeable_operators, run_probe, standardised_uint8
from upsample_zoo.upsamplers import PixelShuffleUp, ResizeConv, TransposedConv


def test_load_zoo_builds_every_config():
    factories, skipped = probeable_operators()
    names = {p.stem for p in (Path(CONFIG_DIR) / "upsampler").glob("*.yaml")} - {"custom"}  # the user's slot
    assert set(factories) | set(skipped) == names
    assert {"tconv", "tconv_k3", "pixel_shuffle", "pixel_shuffle_icnr", "resize_conv", "bilinear"} <= set(factories)
    assert factories["tconv"](4, 2)(torch.zeros(1, 4, 5, 5)).shape == (1, 2, 10, 10)


def test_load_zoo_skips_configs_that_do_not_build(tmp_path):
    (tmp_path / "upsampler").mkdir()
    shutil.copy(Path(CONFIG_DIR) / "upsampler" / "tconv_k3.yaml", tmp_path / "upsampler")
    shutil.copy(Path(CONFIG_DIR) / "upsampler" / "bilinear.yaml", tmp_path / "upsampler")
    (tmp_path / "upsampler" / "broken.yaml").write_text("_target_: upsample_zoo.upsamplers.NoSuchThing\n"
                                                        "_partial_: true\n")
    factories, skipped = probeable_operators(tmp_path, scale=4)  # k3 s2 p1 op1 cannot upsample x4
    assert set(factories) == {"bilinear"}
    assert set(skipped) == {"tconv_k3", "broken"}
    assert "scale=4" in skipped["tconv_k3"]


PROBED = ["tconv", "tconv_k3", "pixel_shuffle", "pixel_shuffle_icnr", "resize_conv", "bilinear"]


@pytest.fixture(scope="module")
def probe():
    return run_probe(seeds=2, quick=True, only=PROBED)


def test_probe_ordering(probe):
    """Odena et al. 2016 and Aitken et al. 2017 as numbers: far above 0 dB vs at or below about 0 dB."""
    def db(name: str, setting: str) -> float:
        return probe.stat(name, setting, "checkerboard_db")[0]

    assert set(probe.values) == {NATURAL, *PROBED}
    for setting in ("layer", "decoder"):
        assert db("tconv_k3", setting) > 10
        assert db("pixel_shuffle_icnr", setting) < 3
        assert min(db(n, setting) for n in ("tconv", "tconv_k3", "pixel_shuffle")) > 10
        assert max(db(n, setting) for n in ("resize_conv", "bilinear", "pixel_shuffle_icnr", NATURAL)) < 1
    # The amplitude tells the same story in 8-bit levels.
    assert probe.stat("tconv_k3", "layer", "checkerboard_amp")[0] > 10
    assert probe.stat("pixel_shuffle_icnr", "layer", "checkerboard_amp")[0] < 1


def test_main_writes_table_json_and_chart(tmp_path, capsys):
    configs = tmp_path / "configs"
    (configs / "upsampler").mkdir(parents=True)
    for name in ("tconv_k3", "pixel_shuffle_icnr"):
        shutil.copy(Path(CONFIG_DIR) / "upsampler" / f"{name}.yaml", configs / "upsampler")
    out = tmp_path / "probe"
    assert main(["--quick", "--seeds", "1", "--out", str(out), "--configs", str(configs)]) == 0
    md = (out / "probe.md").read_text()
    assert "| upsampler | layer checkerboard_db" in md
    assert all(f"| {n} |" in md for n in ("tconv_k3", "pixel_shuffle_icnr", NATURAL))
    data = json.loads((out / "probe.json").read_text())
    assert data["seeds"] == 1 and set(data["values"]) == {NATURAL, "tconv_k3", "pixel_shuffle_icnr"}
    assert (out / "probe.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in out.iterdir()) == ["probe.json", "probe.md", "probe.png"]
    assert "tconv_k3" in capsys.readouterr().out


# ---- hold-out: decoders, inputs and seeds that the probe and the numbers never used ------

KINDS = {
    "tconv": lambda a, b: TransposedConv(a, b, 2),
    "tconv_k3": lambda a, b: TransposedConv(a, b, 2, kernel_size=3, stride=2, padding=1, output_padding=1),
    "pixel_shuffle": lambda a, b: PixelShuffleUp(a, b, 2),
    "resize_conv": lambda a, b: ResizeConv(a, b, 2, mode="nearest"),
    "pixel_shuffle_icnr": lambda a, b: PixelShuffleUp(a, b, 2, icnr=True),
}
FAMILIES = {  # widths, activation, 4x4 input
    "gaussian, wide": ((64, 32, 16, 3), nn.ReLU, torch.randn),
    "uniform, leaky": ((3, 16, 16, 3), lambda: nn.LeakyReLU(0.2), torch.rand),
    "relu'd gaussian": ((16, 16, 8, 3), nn.ReLU, lambda *s: torch.randn(*s).relu()),
}


def _decoder_set(kind: str, family: str) -> float:
    """One image set: 3 random-init decoders x 16 images, scored as one set (power pooled)."""
    widths, act, noise = FAMILIES[family]
    metric = CheckerboardScore(scale=8)
    for seed in range(100, 103):
        torch.manual_seed(seed)
        mods: list[nn.Module] = []
        for i, (cin, cout) in enumerate(itertools.pairwise(widths)):
            mods += [KINDS[kind](cin, cout)] + ([act()] if i < len(widths) - 2 else [])
        with torch.no_grad():
            metric.update(standardised_uint8(nn.Sequential(*mods)(noise(16, widths[0], 4, 4))))
    return metric.compute()["checkerboard_db"].item()


def test_holdout_separates_checkerboarded_from_clean_sets():
    checkered = {(k, f): _decoder_set(k, f) for k in ("tconv", "tconv_k3", "pixel_shuffle") for f in FAMILIES}
    clean = {(k, f): _decoder_set(k, f) for k in ("resize_conv", "pixel_shuffle_icnr") for f in FAMILIES}
    for beta, std in ((0.8, 0.1), (1.3, 0.2)):
        m = CheckerboardScore(scale=8)
        m.update(one_over_f_images(48, 3, 32, seed=500, beta=beta, std=std))
        clean[("natural", f"beta={beta}, std={std}")] = m.compute()["checkerboard_db"].item()
    assert max(clean.values()) <= 3, clean
    assert min(checkered.values()) - max(clean.values()) >= 10, (checkered, clean)


def test_probe_takes_a_users_class_by_its_dotted_path(tmp_path, monkeypatch):
    """`upsample-zoo probe --upsampler mypkg.MyUp`: the user's operator is probed beside the zoo's."""
    pkg = tmp_path / "myprobepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import torch.nn.functional as F\nfrom torch import nn\n\n\n"
        "class MyUp(nn.Module):  # a transposed conv in disguise: checkerboards at init\n"
        "    def __init__(self, in_channels, out_channels):\n"
        "        super().__init__()\n"
        "        self.t = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)\n\n"
        "    def forward(self, x, output_size=None):\n"
        "        return self.t(x)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run_probe(seeds=2, quick=True, only=["myprobepkg.MyUp", "bilinear"])
    assert set(result.values) == {NATURAL, "bilinear", "myprobepkg.MyUp"}
    mine, _ = result.stat("myprobepkg.MyUp", "layer", "checkerboard_db")
    smooth, _ = result.stat("bilinear", "layer", "checkerboard_db")
    assert mine > smooth + 10  # k3 s2 tconv: the classic checkerboard (Odena et al. 2016)


@pytest.mark.parametrize("args,code,needle", [
    (["--seeds", "0"], 2, "argument --seeds: 0 is outside [1, +inf]"),
    (["--seeds", "two"], 2, "argument --seeds: 'two' is not an integer"),
    (["--scale", "3"], 2, "argument --scale: invalid choice: 3"),
    (["--upsampler", "nope"], 2, "unknown upsampler 'nope'; the zoo has bicubic, bilinear"),
    (["--quick", "--upsampler", "bilinear", "--out", "{file}/probe"], 1, "cannot write under --out {file}/probe"),
])
def test_bad_options_and_unwritable_output_are_one_line(tmp_path, capsys, args, code, needle):
    """Every numeric option is checked, an unknown operator is named before any work, and an output folder that
    cannot be written (here: under a file) is one line and exit 1, where it used to be a traceback."""
    from upsample_zoo.probe import main

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as e:
        main([a.replace("{file}", str(blocker)) for a in args])
    assert e.value.code == code
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("upsample-zoo probe: error: ")
    assert needle.replace("{file}", str(blocker)) in err[0]


def test_the_alias_free_pair_starts_clean_where_tconv_does_not():
    """At init fir_sinc (a fixed low-pass) and tconv_blur (a random tconv, then the [1,3,3,1] blur) sit with
    bilinear near 0 dB, in the layer and in the decoder, and tconv far above."""
    probe = run_probe(seeds=2, quick=True, only=["fir_sinc", "tconv_blur", "tconv"])
    for setting in ("layer", "decoder"):
        for name in ("fir_sinc", "tconv_blur"):
            assert probe.stat(name, setting, "checkerboard_db")[0] < 1, (name, setting)
            assert probe.stat(name, setting, "checkerboard_amp")[0] < 0.5, (name, setting)
        assert probe.stat("tconv", setting, "checkerboard_db")[0] > 10
