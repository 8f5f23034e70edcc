"""Bad input, as a new user would hand it over: each case must fail `pairtune check` (the same
validation `pairtune search` runs before Ray starts) with exit 2, no traceback, and one line naming
the file and the key, row or column. A few inputs are accepted on purpose; those are checked too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from search.cli.main import main

GOOD = "less_toxic,more_toxic\n" + "".join(f"text {i} is mild,text {i} is harsh {i % 7}\n" for i in range(60))
# A denser graph so every fold gets votes: each text meets several others.
GOOD += "".join(f"text {i} is mild,text {(i * 7) % 60} is mild\n" for i in range(60) if (i * 7) % 60 != i)


def case(name, expected, *, csv=GOOD, config=None, raw=None, csv_bytes=None, set_=()):
    return pytest.param(dict(csv=csv, config=config or {}, raw=raw, csv_bytes=csv_bytes, set_=list(set_)),
                        expected, id=name)


CASES = [
    case("missing-csv", "{dir}/missing.csv: file not found", config={"data": {"pairs": "{dir}/missing.csv"}}),
    case("empty-csv", "votes.csv: file is empty", csv=""),
    case("header-only", "votes.csv: header only, no votes", csv="less_toxic,more_toxic\n"),
    case("missing-column", "votes.csv: missing column 'more_toxic'", csv="less_toxic,other\na,b\n"),
    case("misspelt-column", "missing column 'more_toxic' (data.more_column); columns are ['less_toxic', 'more_toxc']; did you mean 'more_toxc'?",
         csv="less_toxic,more_toxc\na,b\n"),
    case("wrong-delimiter", "is the delimiter not a comma?", csv="less_toxic;more_toxic\na;b\n"),
    # the same, where a text holds a comma: the CSV reader fails before the columns are looked at
    case("wrong-delimiter-comma-in-text", "not a readable CSV (Error tokenizing data. C error: Expected 1 fields in line 3, saw 2) "
         "(the header has a single column: is the delimiter not a comma?)", csv="less_toxic;more_toxic\na;b\nc;d, e\n"),
    case("empty-text", "votes.csv: row 3: empty text in column 'less_toxic'", csv="less_toxic,more_toxic\na,b\n,c\n"),
    case("whitespace-text", "row 2: empty text in column 'more_toxic'", csv="less_toxic,more_toxic\na,   \n"),
    case("all-identical", "every row has the same text on both sides", csv="less_toxic,more_toxic\na,a\nb,b\n"),
    case("single-pair", "cannot make 5 leak-free folds from 1 votes over 2 texts", csv="less_toxic,more_toxic\na,b\n"),
    case("too-few-for-folds", "cannot make 5 leak-free folds from 4 votes over 8 texts",
         csv="less_toxic,more_toxic\na,b\nc,d\ne,f\ng,h\n"),
    case("invalid-utf8", "votes.csv: not valid UTF-8", csv_bytes=b"less_toxic,more_toxic\nabc,\xff\xfe\xfa\n"),
    case("broken-quoting", "votes.csv: not a readable CSV", csv_bytes=b'less_toxic,more_toxic\n"a,b\nc,d,e,f\n'),
    case("unknown-key", "c.yaml: train.learning_rate: unknown key", config={"train": {"learning_rate": 1e-4}}),
    case("unknown-section", "c.yaml: trian: unknown section; did you mean 'train'?", config={"trian": {}}),
    case("wrong-type", "c.yaml: train.batch_size: must be an integer, got 'thirty-two'", config={"train": {"batch_size": "thirty-two"}}),
    case("bool-as-number", "c.yaml: data.lowercase: must be true or false, got 1", config={"data": {"lowercase": 1}}),
    case("range-low-above-high", "c.yaml: search.space.train.lr: low 0.001 is greater than high 1e-05",
         config={"search": {"space": {"train.lr": {"uniform": [1e-3, 1e-5]}}}}),
    case("log-range-with-zero", "c.yaml: search.space.train.lr: a log range must be above 0",
         config={"search": {"space": {"train.lr": {"loguniform": [0.0, 1e-3]}}}}),
    case("choice-without-options", "c.yaml: search.space.train.batch_size: choice needs a non-empty list",
         config={"search": {"space": {"train.batch_size": {"choice": []}}}}),
    case("negative-lr", "c.yaml: train.lr: must be positive, got -0.0001", config={"train": {"lr": -1e-4}}),
    case("fp16-on-cpu-cluster", "c.yaml: train.precision: 16-mixed needs GPU trials but search.gpus_per_trial is 0",
         config={"train": {"precision": "16-mixed"}}),
    case("backbone-path-missing", "c.yaml: model.backbone: backbone path ./models/nope does not exist",
         config={"model": {"backbone": "./models/nope"}}),
    case("metric-mismatch", "c.yaml: search.metric: must be one of ['val/agreement', 'val/pearson'", config={"search": {"metric": "val/accuracy"}}),
    case("mode-mismatch", "c.yaml: search.mode: val/agreement is better when higher, so mode must be 'max'", config={"search": {"mode": "min"}}),
    case("gpus-this-machine-lacks", "c.yaml: search.gpus_per_trial: 1 GPUs per trial, but this machine has 0",
         config={"search": {"gpus_per_trial": 1}}),
    case("fractional-gpus-above-one", "c.yaml: search.gpus_per_trial: above 1 must be a whole number of GPUs (one per DDP worker)",
         config={"search": {"gpus_per_trial": 1.5}}),
    case("more-cpus-than-machine", "c.yaml: search.cpus_per_trial: 512 CPUs per trial, but this machine has",
         config={"search": {"cpus_per_trial": 512}}),
    case("fold-out-of-range", "c.yaml: data.fold: must be in 0..4 for 5 folds, got 7", config={"data": {"fold": 7}}),
    case("point-outside-space", "c.yaml: search.points_to_evaluate[0].train.margin: not a key of search.space",
         config={"search": {"space": {"train.lr": {"loguniform": [1e-5, 1e-3]}}, "points_to_evaluate": [{"train.margin": 0.5}]}}),
    case("range-as-bare-list", "c.yaml: search.space.train.lr: a bare list is ambiguous",
         config={"search": {"space": {"train.lr": [1e-5, 1e-3]}}}),
    case("yaml-syntax", "c.yaml: not valid YAML (line", raw="train: {lr: [1e-4\n"),
    case("config-not-a-mapping", "c.yaml: the config must be a mapping with sections", raw="- train\n- search\n"),
    case("bad-set", "--set train.lr: expected section.key=value", set_=["train.lr"]),
    case("set-value-not-yaml", "--set train.lr=[1,2: the value is not valid YAML", set_=["train.lr=[1,2"]),
    case("set-value-missing", "--set data.max_votes=: no value; write data.max_votes=null for null", set_=["data.max_votes="]),
    case("max-length-beyond-backbone", "c.yaml: data.max_length: 1024 tokens, but backbone minilm has 512 positions",
         config={"data": {"max_length": 1024}}),
    case("storage-path-under-a-file", "c.yaml: search.storage_path: cannot create {dir}/votes.csv/runs",
         config={"search": {"storage_path": "{dir}/votes.csv/runs"}}),
    case("pairs-is-a-directory", "is a directory, expected a CSV file", config={"data": {"pairs": "{dir}"}}),
]


def run_check(tmp_path, capsys, spec):
    csv = tmp_path / "votes.csv"
    if spec["csv_bytes"] is not None:
        csv.write_bytes(spec["csv_bytes"])
    else:
        csv.write_text(spec["csv"], encoding="utf-8")
    config = yaml.safe_load(yaml.safe_dump(spec["config"]).replace("{dir}", str(tmp_path)))
    config.setdefault("data", {}).setdefault("pairs", str(csv))
    path = tmp_path / "c.yaml"
    path.write_text(spec["raw"] if spec["raw"] is not None else yaml.safe_dump(config))
    args = ["check", str(path)] + [a for s in spec["set_"] for a in ("--set", s)]
    code = main(args)
    return code, capsys.readouterr()




@pytest.mark.parametrize("spec, expected", CASES)
def test_bad_input_gets_one_clear_line(tmp_path, capsys, spec, expected):
    code, out = run_check(tmp_path, capsys, spec)
    expected = expected.replace("{dir}", str(tmp_path))
    errors = [ln for ln in out.err.splitlines() if ln.startswith("pairtune: error: ")]
    assert code == 2, out.out + out.err
    assert "Traceback" not in out.err
    assert len(errors) == 1, errors
    assert expected in errors[0], errors[0]


def test_the_readme_counts_the_cases_that_run():
    """The README's count of malformed inputs is the number of cases the test below runs, each a
    different input: a case added, dropped or duplicated without the README changing fails here."""
    marks = [m for m in test_bad_input_gets_one_clear_line.pytestmark if m.name == "parametrize"]
    cases = [p for m in marks for p in m.args[1]]
    ids = [p.id for p in cases]
    assert len(set(ids)) == len(ids), sorted(i for i in ids if ids.count(i) > 1)
    inputs = [yaml.safe_dump(p.values[0], sort_keys=True) for p in cases]
    assert len(set(inputs)) == len(inputs), "two cases hand over the same input"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    claims = [int(n) for n in re.findall(r"(\d+) malformed inputs", readme)]
    assert claims and set(claims) == {len(cases)}, f"README says {claims} malformed inputs; the test runs {len(cases)}"


@pytest.mark.parametrize(
    "csv, expected",
    [
        (GOOD, "ok: the config and data are valid"),
        ("\ufeff" + GOOD, "ok: the config and data are valid"),  # a byte-order mark is fine
        (GOOD + "same text,same text\n", "(1 rows with identical texts dropped)"),  # dropped and counted
        (GOOD + "short," + "very long text " * 20000 + "\n", "ok: the config and data are valid"),  # truncated later
    ],
    ids=["good", "byte-order-mark", "identical-texts-dropped", "very-long-text"],
)
def test_inputs_that_are_accepted(tmp_path, capsys, csv, expected):
    code, out = run_check(tmp_path, capsys, dict(csv=csv, config={"data": {"max_length": 32}}, raw=None, csv_bytes=None, set_=[]))
    assert code == 0, out.err
    assert expected in out.out


def test_every_problem_is_reported_together(tmp_path, capsys):
    """Three bad rows (the last empty on both sides) and a bad key: a line for each problem, all in one
    run (no fix-one-and-rerun loop)."""
    bad_rows = GOOD + ",empty on the left\nempty on the right,   \n,\n"
    spec = dict(csv=bad_rows, config={"train": {"epoch": 3}}, raw=None, csv_bytes=None, set_=[])
    code, out = run_check(tmp_path, capsys, spec)
    errors = [ln for ln in out.err.splitlines() if ln.startswith("pairtune: error: ")]
    assert code == 2 and "Traceback" not in out.err
    first = GOOD.count("\n") + 1  # CSV line of the first bad row (after the header)
    assert errors == [
        "pairtune: error: " + str(tmp_path / "c.yaml") + ": train.epoch: unknown key; did you mean 'train.epochs'?",
        f"pairtune: error: {tmp_path / 'votes.csv'}: row {first}: empty text in column 'less_toxic'",
        f"pairtune: error: {tmp_path / 'votes.csv'}: row {first + 2}: empty text in column 'less_toxic'",
        f"pairtune: error: {tmp_path / 'votes.csv'}: row {first + 1}: empty text in column 'more_toxic'",
        f"pairtune: error: {tmp_path / 'votes.csv'}: row {first + 2}: empty text in column 'more_toxic'",
    ]


def test_every_bad_row_of_a_scored_file_is_named(tmp_path, capsys):
    csv = tmp_path / "scores.csv"
    csv.write_text("text,score\n" + "".join(f"text {i},{i}\n" for i in range(20)) + "a,high\n,1\nb,\n")
    code = main(["check", str(_write(tmp_path, {"data": {"pairs": str(csv), "format": "scores", "text_column": "text",
                                                         "score_column": "score"}, "train": {"lr": -1}}))])
    errors = [ln.removeprefix("pairtune: error: ") for ln in capsys.readouterr().err.splitlines()]
    assert code == 2
    assert errors == [
        f"{tmp_path / 'c.yaml'}: train.lr: must be positive, got -1.0",
        f"{csv}: row 22: column 'score' (data.score_column) must be a number, got 'high'",
        f"{csv}: row 24: column 'score' (data.score_column) must be a number, got ''",
        f"{csv}: row 23: empty text (column 'text')",
    ]


def _write(tmp_path, config):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_pooler_on_a_backbone_without_one_is_refused_before_anything_runs(tmp_path, capsys, tiny_backbone):
    """model.pooling pooler reads the backbone's pretrained pooler. A BERT saved without its pooler
    weights and an architecture that has none (DistilBERT) are refused by `pairtune check`, naming the
    key, also when pooler is only one searched choice; the tiny BERT, which has one, passes. Weights in
    a .bin file (whose names need the whole file read) are checked when the trial loads them."""
    import shutil

    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel

    from model.backbone import BackboneError, load_encoder

    def backbone(name, model):
        directory = tmp_path / name
        model.save_pretrained(directory)
        for f in Path(tiny_backbone).iterdir():
            if f.name.startswith(("tokenizer", "vocab", "special")):
                shutil.copy(f, directory)
        return directory

    bert = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    no_weights = backbone("no-pooler-weights", BertModel(bert, add_pooling_layer=False))
    no_pooler = backbone("distil", DistilBertModel(DistilBertConfig(vocab_size=30522, dim=32, n_layers=1, n_heads=2, hidden_dim=64)))
    weights = f"backbone {no_weights}: its weights have no pooler (it would start from random values)"
    architecture = f"backbone {no_pooler} (DistilBertModel) has no pooler"
    cases = [({"backbone": str(no_weights), "pooling": "pooler"}, weights), ({"backbone": str(no_pooler), "pooling": "pooler"}, architecture),
             ({"backbone": str(no_pooler)}, architecture)]  # the last: pooler one choice of a searched model.pooling
    capsys.readouterr()
    for model, expected in cases:
        search = {} if "pooling" in model else {"space": {"model.pooling": {"choice": ["mean", "pooler"]}}}
        code = main(["check", str(_write(tmp_path, {"data": {"pairs": str(tmp_path / "votes.csv")}, "model": model,
                                                    "search": search}))])
        errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("pairtune: error: ")]
        assert code == 2 and errors == [f"pairtune: error: {tmp_path / 'c.yaml'}: model.pooling: pooler: {expected}; "
                                        "use model.pooling mean or cls"], errors
    (tmp_path / "votes.csv").write_text(GOOD, encoding="utf-8")
    code = main(["check", str(_write(tmp_path, {"data": {"pairs": str(tmp_path / "votes.csv"), "max_length": 32},
                                                "model": {"backbone": tiny_backbone, "pooling": "pooler"}}))])
    assert code == 0, capsys.readouterr().err
    in_a_bin = backbone("bin", BertModel(bert, add_pooling_layer=False))
    torch.save(load_file(in_a_bin / "model.safetensors"), in_a_bin / "pytorch_model.bin")  # as older hub models ship
    (in_a_bin / "model.safetensors").unlink()
    with pytest.raises(BackboneError, match=r"its weights have no pooler \(pooler\.dense\.(weight|bias)\)"):
        load_encoder(str(in_a_bin), pooler=True)
