from tools.config_reference import TARGET, render


def test_configuration_reference_is_current():
    assert TARGET.read_text(encoding="utf-8") == render(), "run `python -m tools.config_reference`"


def test_every_setting_has_help():
    text = render()
    rows = [line for line in text.splitlines() if line.startswith("| `CASPIAN_")]
    assert len(rows) > 60
    assert all(not line.rstrip().endswith("|  |") for line in rows), [
        r for r in rows if r.rstrip().endswith("|  |")
    ]
