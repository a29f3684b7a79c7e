#!/usr/bin/env python3
"""`ruclip synth` + `ruclip train` smoke test: a tiny model trained for a few
dozen steps on generated Russian shapes. The loss falls, the checkpoint
reloads in `ruclip classify`, and `--resume` continues the run.

The real training (the shipped model) is models/recipes/ruclip-shapes-ru/train.sh.
"""
import json
import os
import subprocess
import tempfile
import unittest

EXE = os.environ["RUCLIP_EXE"]
# Under AddressSanitizer (scripts/sanitize.sh --all) the SentencePiece module
# can't load beside LibTorch (it needs RTLD_DEEPBIND, which ASan refuses): there
# the same runs use the YouTokenToMe tokenizer of tests/data instead.
ASAN = "address" in os.environ.get("RUCLIP_SANITIZE", "")
TINY_BPE = os.path.join(os.environ["RUCLIP_TEST_DATA"], "ruclip-tiny-v2", "bpe.model")

CONFIG = {
    "embed_dim": 32, "image_resolution": 32, "vision_layers": 1, "vision_width": 64, "vision_patch_size": 8,
    "context_length": 16, "vocab_size": 400, "transformer_width": 64, "transformer_heads": 2,
    "transformer_layers": 1,
}


def run(*args, check=True):
    p = subprocess.run([EXE, *args], capture_output=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"ruclip {args} failed ({p.returncode}): {p.stderr.decode()}")
    return p


class TrainSmoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.dir = cls.tmp.name
        run("synth", "--out", f"{d}/data", "--count", "512", "--width", "32", "--height", "32", "--seed", "7")
        with open(f"{d}/data/captions.csv", encoding="utf-8") as f:
            captions = [line.rstrip("\n").split(",", 1)[1] for line in f][1:]
        with open(f"{d}/corpus.txt", "w", encoding="utf-8") as f:
            f.write("\n".join(c.strip('"').lower() for c in captions) + "\n")
        if ASAN:
            print("AddressSanitizer: training with tests/data's YouTokenToMe tokenizer, not SentencePiece")
            cls.tokenizer, cls.tokenizer_kind = TINY_BPE, "yttm"
            config = dict(CONFIG, vocab_size=3000)
        else:
            subprocess.run(["spm_train", f"--input={d}/corpus.txt", f"--model_prefix={d}/sentencepiece",
                            "--vocab_size=300", "--model_type=bpe", "--character_coverage=1.0", "--pad_id=0",
                            "--unk_id=1", "--bos_id=2", "--eos_id=3", "--minloglevel=2"],
                           check=True, capture_output=True)
            cls.tokenizer, cls.tokenizer_kind = f"{d}/sentencepiece.model", "sentencepiece"
            config = CONFIG
        with open(f"{d}/config.json", "w") as f:
            json.dump(config, f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def train(self, out, *extra):
        d = self.dir
        p = run("train", "--data", f"{d}/data", "--out", out, "--batch", "64", "--lr", "2e-3", "--warmup", "4",
                "--seed", "3", *extra)
        return json.loads(p.stdout)

    def test_loss_falls_and_the_checkpoint_reloads(self):
        d = self.dir
        out = f"{d}/model"
        result = self.train(out, "--config", f"{d}/config.json", "--tokenizer", self.tokenizer, "--epochs", "6")
        self.assertEqual(result["steps"], 6 * (512 // 64))
        self.assertLess(result["last_loss"], result["first_loss"] - 0.3, result)
        for name in ("model.safetensors", "config.json", os.path.basename(self.tokenizer), "optimizer.safetensors",
                     "train_state.json"):
            self.assertTrue(os.path.exists(f"{out}/{name}"), name)
        with open(f"{out}/config.json") as f:
            self.assertEqual(json.load(f)["tokenizer"], self.tokenizer_kind)
        # The written folder is a model folder like any other.
        with open(f"{d}/data/labels.csv", encoding="utf-8") as f:
            first = f.readlines()[1].rstrip("\n").split(",", 1)
        classified = json.loads(run("classify", "--model", out, "--label", "красный круг", "--label",
                                    "синяя звезда", f"{d}/data/{first[0]}").stdout)
        probs = [l["probability"] for l in classified["images"][0]["labels"]]
        self.assertAlmostEqual(sum(probs), 1.0, places=5)

        # Resume: two more epochs continue from step 48 with the saved optimizer state.
        resumed = self.train(out, "--resume", "--epochs", "8")
        self.assertEqual(resumed["steps"], 8 * 8)
        with open(f"{out}/train_state.json") as f:
            self.assertEqual(json.load(f)["step"], 64)

        # And a trained folder is a valid starting point (--init), with the image tower frozen.
        frozen = self.train(f"{d}/frozen", "--init", out, "--epochs", "1", "--freeze-image")
        self.assertEqual(frozen["steps"], 8)

    def test_a_schedule_split_into_runs_equals_one_run(self):
        # 4 epochs in one run, and the same 4-epoch schedule as 2 epochs then a resume.
        d = self.dir
        start = ("--config", f"{d}/config.json", "--tokenizer", self.tokenizer)
        self.train(f"{d}/whole", *start, "--epochs", "4")
        self.train(f"{d}/split", *start, "--epochs", "2", "--schedule-epochs", "4")
        with open(f"{d}/split/train_state.json") as f:
            self.assertEqual(json.load(f)["schedule_epochs"], 4)
        self.train(f"{d}/split", "--resume", "--epochs", "4")
        # Without --schedule-epochs the first run decays its rate to zero at epoch 2: other weights.
        self.train(f"{d}/unplanned", *start, "--epochs", "2")
        self.train(f"{d}/unplanned", "--resume", "--epochs", "4")
        embed = lambda m: json.loads(run("embed", "--model", m, "--text", "красный круг").stdout)["text"][0]
        whole, split, unplanned = embed(f"{d}/whole"), embed(f"{d}/split"), embed(f"{d}/unplanned")
        self.assertLess(max(abs(a - b) for a, b in zip(whole, split)), 1e-4)
        self.assertGreater(max(abs(a - b) for a, b in zip(whole, unplanned)), 1e-3)
        p = run("train", "--data", f"{d}/data", "--out", f"{d}/bad", *start, "--epochs", "3", "--schedule-epochs", "2",
                check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("schedule-epochs must be at least epochs", p.stderr.decode())

    def test_errors(self):
        d = self.dir
        p = run("train", "--data", f"{d}/nothing", "--out", f"{d}/x", "--config", f"{d}/config.json",
                "--tokenizer", self.tokenizer, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"{d}/nothing", p.stderr.decode())
        p = run("train", "--data", f"{d}/data", "--out", f"{d}/x", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("needs --config", p.stderr.decode())
        p = run("train", "--data", f"{d}/data", "--out", f"{d}/x", "--config", f"{d}/config.json",
                "--tokenizer", self.tokenizer, "--batch", "1000", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("fewer than one batch", p.stderr.decode())
        p = run("train", "--data", f"{d}/data", "--out", f"{d}/y", "--resume", check=False)
        self.assertEqual(p.returncode, 1)

    def test_resume_on_new_pairs(self):
        # Resuming with another data set continues the schedule on it (how the
        # shipped model saw new pictures every epoch), if it gives the same steps per epoch.
        d = self.dir
        run("synth", "--out", f"{d}/more", "--count", "512", "--width", "32", "--height", "32", "--seed", "8")
        run("synth", "--out", f"{d}/fewer", "--count", "256", "--width", "32", "--height", "32", "--seed", "9")
        self.train(f"{d}/renewed", "--config", f"{d}/config.json", "--tokenizer", self.tokenizer, "--epochs", "1",
                   "--schedule-epochs", "2")
        result = json.loads(run("train", "--data", f"{d}/more", "--out", f"{d}/renewed", "--resume", "--epochs", "2",
                                "--batch", "64").stdout)
        self.assertEqual(result["steps"], 2 * 8)
        for other in (("--data", f"{d}/fewer", "--batch", "64"), ("--data", f"{d}/more", "--batch", "32")):
            p = run("train", *other, "--out", f"{d}/renewed", "--resume", "--epochs", "3", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn(f"{d}/renewed/train_state.json: the run had 8 steps per epoch", p.stderr.decode())


if __name__ == "__main__":
    unittest.main(verbosity=2)
