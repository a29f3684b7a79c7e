#!/usr/bin/env python3
"""`ruclip eval` against `ruclip classify` on the same images, labels and templates.

The tiny model's predictions are arbitrary but deterministic: the expected
accuracy, per-class numbers and confusion matrix are computed here from what
`ruclip classify` says about each image, then compared with eval's.

Run by meson (`meson test eval`) with RUCLIP_EXE and RUCLIP_TEST_DATA set.
Standard library only.
"""
import csv
import json
import os
import shutil
import subprocess
import tempfile
import unittest

EXE = os.environ["RUCLIP_EXE"]
DATA = os.environ["RUCLIP_TEST_DATA"]
MODEL = os.path.join(DATA, "ruclip-tiny-v2")
IMAGES = sorted(os.path.join(MODEL, "images", f) for f in os.listdir(os.path.join(MODEL, "images")))

# With these labels the tiny model does not predict one class for everything.
# class -> [(file name, fixture image index)]; one name needs CSV quoting.
LAYOUT = {
    "кот": [("a.png", 0), ('b, "quoted".png', 1), ("c.png", 2)],
    "птица": [("a.png", 3), ("b.png", 4), ("c.PNG", 0)],
    "пёс": [("a.png", 1), ("b.jpeg", 4), ("c.png", 3)],
}
EXTRA_LABELS = ["лошадь", "корабль", "олень", "лягушка"]
TEMPLATES = ["{}", "фото, на котором изображено {}", "это {}"]


def run(*args):
    return subprocess.run([EXE, *args], capture_output=True, timeout=120)


def ok(*args):
    p = run(*args)
    if p.returncode != 0:
        raise AssertionError(f"ruclip {args} failed ({p.returncode}): {p.stderr.decode()}")
    return p


def ok_json(*args):
    return json.loads(ok(*args).stdout)


def opts(name, values):
    out = []
    for v in values:
        out += [f"--{name}", v]
    return out


def make_folder(root, layout=LAYOUT):
    """Class folders under root; returns [(path, label)] in eval's folder order."""
    items = []
    for label in sorted(layout):
        os.makedirs(os.path.join(root, label), exist_ok=True)
        for name, index in sorted(layout[label]):
            path = os.path.join(root, label, name)
            shutil.copy(IMAGES[index], path)
            items.append((path, label))
    return items


def expected(items, labels, templates=()):
    """What eval must report, from `ruclip classify` on the same images."""
    out = ok_json("classify", "--model", MODEL, *opts("label", labels), *opts("template", templates),
                  *[path for path, _ in items])
    k = min(5, len(labels))
    n = len(labels)
    confusion = [[0] * n for _ in range(n)]
    count, top1, topk = [0] * n, [0] * n, [0] * n
    predictions = []
    for (path, label), image in zip(items, out["images"]):
        assert image["file"] == path
        ranked = [l["label"] for l in image["labels"]]
        t, p = labels.index(label), labels.index(ranked[0])
        confusion[t][p] += 1
        count[t] += 1
        top1[t] += p == t
        topk[t] += label in ranked[:k]
        predictions.append({"file": path, "label": label, "predicted": ranked[0], "top": ranked[:k],
                            "probability": image["labels"][0]["probability"]})
    images = len(items)
    with_images = [c for c in range(n) if count[c]]
    return {
        "images": images,
        "labels": list(labels),
        "k": k,
        "top1": sum(top1) / images,
        "top5": sum(topk) / images,
        "top1_correct": sum(top1),
        "top5_correct": sum(topk),
        "mean_per_class_top1": sum(top1[c] / count[c] for c in with_images) / len(with_images),
        "per_class": [{"label": labels[c], "count": count[c],
                       "top1": top1[c] / count[c] if count[c] else None,
                       "top5": topk[c] / count[c] if count[c] else None} for c in range(n)],
        "confusion": {"labels": list(labels), "matrix": confusion},
        "predictions": predictions,
    }


class EvalCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ruclip-eval-")
        self.addCleanup(shutil.rmtree, self.dir)

    def eval(self, *args):
        p = ok("eval", "--model", MODEL, *args)
        lines = p.stdout.decode().splitlines()
        self.assertEqual(len(lines), 1, "stdout holds exactly one line of JSON")
        return json.loads(lines[0]), p.stderr.decode()

    def assert_matches(self, got, want):
        """Every number of `want` (from classify) in eval's output `got`."""
        for key in ("images", "labels", "k", "top1_correct", "top5_correct", "confusion"):
            self.assertEqual(got[key], want[key], key)
        for key in ("top1", "top5", "mean_per_class_top1"):
            self.assertAlmostEqual(got[key], want[key], places=12, msg=key)
        self.assertEqual(len(got["per_class"]), len(want["per_class"]))
        for g, w in zip(got["per_class"], want["per_class"]):
            self.assertEqual((g["label"], g["count"]), (w["label"], w["count"]))
            for key in ("top1", "top5"):
                if w[key] is None:
                    self.assertIsNone(g[key])
                else:
                    self.assertAlmostEqual(g[key], w[key], places=12)
        self.assertEqual(len(got["predictions"]), len(want["predictions"]))
        for g, w in zip(got["predictions"], want["predictions"]):
            for key in ("file", "label", "predicted", "top"):
                self.assertEqual(g[key], w[key], (key, w["file"]))
            # Batched encoding may differ from one-by-one in the last bits only.
            self.assertAlmostEqual(g["probability"], w["probability"], delta=1e-4)

    def assert_consistent(self, got):
        """The summary numbers follow from eval's own per-image predictions."""
        labels, n = got["labels"], len(got["labels"])
        self.assertEqual(got["k"], min(5, n))
        matrix = got["confusion"]["matrix"]
        self.assertEqual(got["confusion"]["labels"], labels)
        self.assertEqual(len(matrix), n)
        self.assertTrue(all(len(row) == n for row in matrix))
        self.assertEqual(sum(map(sum, matrix)), got["images"])
        self.assertEqual(len(got["predictions"]), got["images"])
        rebuilt = [[0] * n for _ in range(n)]
        for p in got["predictions"]:
            self.assertEqual(len(p["top"]), got["k"])
            self.assertEqual(p["top"][0], p["predicted"])
            rebuilt[labels.index(p["label"])][labels.index(p["predicted"])] += 1
        self.assertEqual(rebuilt, matrix)
        for c, row in enumerate(got["per_class"]):
            self.assertEqual(row["count"], sum(matrix[c]))
        self.assertEqual(sum(r["count"] for r in got["per_class"]), got["images"])
        self.assertEqual(got["top1_correct"], sum(matrix[c][c] for c in range(n)))
        self.assertGreaterEqual(got["top5"], got["top1"])
        self.assertGreater(got["images_per_second"], 0)
        self.assertGreater(got["seconds"], 0)


class Folder(EvalCase):
    def test_matches_classify(self):
        items = make_folder(self.dir)
        # Ignored: other files, deeper folders, hidden folders, files beside the classes.
        with open(os.path.join(self.dir, "пёс", "notes.txt"), "w") as f:
            f.write("not an image")
        os.makedirs(os.path.join(self.dir, "пёс", "deeper"))
        shutil.copy(IMAGES[0], os.path.join(self.dir, "пёс", "deeper", "x.png"))
        os.makedirs(os.path.join(self.dir, ".cache"))
        shutil.copy(IMAGES[0], os.path.join(self.dir, ".cache", "x.png"))
        shutil.copy(IMAGES[0], os.path.join(self.dir, "loose.png"))

        got, report = self.eval("--data", self.dir)
        labels = sorted(LAYOUT)
        self.assertEqual(got["labels"], labels)
        self.assertEqual(got["templates"], expected_default_templates())
        self.assertEqual(got["model"], MODEL)
        self.assertEqual(got["data"], self.dir)
        self.assertEqual(got["images"], 9)
        self.assert_consistent(got)
        self.assert_matches(got, expected(items, labels))
        # The data is chosen so that the test means something.
        self.assertGreater(got["top1_correct"], 0)
        self.assertLess(got["top1_correct"], 9)
        # The readable report went to stderr.
        self.assertIn("top-1", report)
        self.assertIn("top-3", report)
        self.assertIn("confusion (rows: true label, columns: predicted label)", report)
        for label in labels:
            self.assertIn(label, report)

    def test_templates_and_batches(self):
        items = make_folder(self.dir)
        labels = sorted(LAYOUT)
        want = expected(items, labels, TEMPLATES)
        for batch in ("1", "2", "32"):
            got, _ = self.eval("--data", self.dir, "--batch", batch, "--threads", "1", *opts("template", TEMPLATES))
            self.assertEqual(got["templates"], TEMPLATES)
            self.assertEqual(got["batch"], int(batch))
            self.assert_consistent(got)
            self.assert_matches(got, want)

    def test_more_labels_than_classes(self):
        items = make_folder(self.dir)
        labels = ["кот", "пёс", "птица"] + EXTRA_LABELS
        got, _ = self.eval("--data", self.dir, *opts("label", labels))
        self.assertEqual(got["k"], 5)
        self.assert_consistent(got)
        self.assert_matches(got, expected(items, labels))
        for row in got["per_class"][3:]:
            self.assertEqual(row["count"], 0)
            self.assertIsNone(row["top1"])

    def test_json_only(self):
        make_folder(self.dir)
        got, report = self.eval("--data", self.dir, "--json-only")
        self.assertEqual(got["images"], 9)
        self.assertNotIn("top-1", report)
        self.assertNotIn("confusion", report)

    def test_label_map(self):
        layout = {"cat": LAYOUT["кот"], "bird": LAYOUT["птица"], "dog": LAYOUT["пёс"]}
        items = make_folder(self.dir, layout)
        names = {"cat": "кот", "bird": "птица", "dog": "пёс"}
        label_map = os.path.join(self.dir, "map.csv")
        with open(label_map, "w", encoding="utf-8", newline="") as f:
            f.write("folder,label\ncat,кот\nbird,птица\ndog,пёс\nship,корабль\n")
        got, report = self.eval("--data", self.dir, "--label-map", label_map)
        labels = [names[folder] for folder in sorted(layout)]  # sorted folder names, mapped
        self.assertEqual(got["labels"], labels)
        self.assert_consistent(got)
        self.assert_matches(got, expected([(p, names[l]) for p, l in items], labels))
        self.assertNotIn("warning", report)

        # A folder the map does not name keeps its own name, with a warning.
        with open(label_map, "w", encoding="utf-8") as f:
            f.write("cat,кот\nbird,птица\n")
        got, report = self.eval("--data", self.dir, "--label-map", label_map)
        self.assertEqual(got["labels"], ["птица", "кот", "dog"])
        self.assertIn("warning: the label map has no entry for 'dog'", report)

    def test_many_labels_report_pairs(self):
        long_name = "очень длинное название класса номер двадцать"
        layout = {f"класс {i:02d}": [("x.png", i % 5)] for i in range(20)}
        layout[long_name] = [("x.png", 2)]
        make_folder(self.dir, layout)
        got, report = self.eval("--data", self.dir)
        self.assertEqual(len(got["labels"]), 21)
        self.assert_consistent(got)
        self.assertEqual(len(got["confusion"]["matrix"]), 21)
        self.assertIn("most confused pairs", report)
        self.assertNotIn("confusion (rows", report)
        self.assertIn("…", report)  # the long label, truncated in the table
        pairs = report.split("most confused pairs")[1].strip().splitlines()[2:]
        errors = got["images"] - got["top1_correct"]
        self.assertEqual(len(pairs), min(20, sum(1 for r, row in enumerate(got["confusion"]["matrix"])
                                                 for c, v in enumerate(row) if r != c and v)))
        self.assertGreater(errors, 0)


def expected_default_templates():
    # upstream ruclip/predictor.py, Predictor.templates
    return ["{}", "фото, на котором изображено {}", "изображение с {}", "картинка с {}", "фото с {}",
            "на фото видно {}"]


class Tables(EvalCase):
    def folder_result(self):
        items = make_folder(os.path.join(self.dir, "set"))
        got, _ = self.eval("--data", os.path.join(self.dir, "set"))
        return items, got

    def assert_same_numbers(self, a, b):
        for key in ("images", "labels", "templates", "k", "top1", "top5", "top1_correct", "top5_correct",
                    "mean_per_class_top1", "per_class", "confusion"):
            self.assertEqual(a[key], b[key], key)
        for x, y in zip(a["predictions"], b["predictions"]):
            for key in ("file", "label", "predicted", "top"):
                self.assertEqual(x[key], y[key], key)

    def test_csv_like_the_folder(self):
        items, want = self.folder_result()
        table = os.path.join(self.dir, "set", "data.csv")
        with open(table, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)  # \r\n line ends; quotes the name with a comma and quotes
            w.writerow(["note", "file", "label"])
            for path, label in items:
                w.writerow([f"a, \"note\" for {label}", os.path.relpath(path, os.path.dirname(table)), label])
        with open(table, encoding="utf-8") as f:
            self.assertIn('"кот/b, ""quoted"".png"', f.read())
        got, _ = self.eval("--data", table)
        self.assertEqual(got["data"], table)
        self.assert_consistent(got)
        self.assert_same_numbers(got, want)

    def test_jsonl_like_the_folder(self):
        items, want = self.folder_result()
        table = os.path.join(self.dir, "set", "data.jsonl")
        with open(table, "w", encoding="utf-8") as f:
            for i, (path, label) in enumerate(items):
                name = os.path.relpath(path, os.path.dirname(table))
                row = {"image": name, "caption": label} if i % 2 else {"file": name, "label": label, "id": i}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                if i == 3:
                    f.write("\n")
        got, _ = self.eval("--data", table)
        self.assert_consistent(got)
        self.assert_same_numbers(got, want)

    def test_label_order_of_a_table(self):
        items, want = self.folder_result()
        shuffled = items[3:] + items[:3]  # птица first, then пёс, then кот
        table = os.path.join(self.dir, "shuffled.csv")
        with open(table, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", "label"])
            for path, label in shuffled:
                w.writerow([path, label])  # absolute paths stay as they are
        got, _ = self.eval("--data", table)
        self.assertEqual(got["labels"], ["птица", "пёс", "кот"])  # first appearance
        self.assert_consistent(got)
        # With the folder's label order given, the same numbers as the folder.
        got, _ = self.eval("--data", table, *opts("label", want["labels"]))
        self.assert_consistent(got)
        self.assertEqual(got["confusion"], want["confusion"])
        self.assertEqual(got["per_class"], want["per_class"])
        self.assertEqual(got["top1"], want["top1"])
        self.assertEqual(got["top5"], want["top5"])


class Errors(EvalCase):
    def assert_fails(self, args, code, *fragments):
        p = run("eval", "--model", MODEL, *args)
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, code, err)
        self.assertEqual(p.stdout, b"")
        for f in fragments:
            self.assertIn(f, err)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_missing_data(self):
        missing = os.path.join(self.dir, "nothing-here")
        self.assert_fails(["--data", missing], 1, missing, "no such file or folder")

    def test_empty_folder(self):
        self.assert_fails(["--data", self.dir], 1, self.dir, "no class subfolders")
        os.makedirs(os.path.join(self.dir, "кот"))
        self.write("кот/readme.txt", "no images here")
        self.assert_fails(["--data", self.dir], 1, self.dir, "no images")

    def test_unreadable_image_is_named(self):
        make_folder(self.dir)
        bad = self.write("пёс/broken.png", "not a png at all")
        self.assert_fails(["--data", self.dir], 1, bad, "not an image")

    def test_missing_file_of_a_table(self):
        table = self.write("data.csv", "file,label\nmissing.png,кот\n")
        self.assert_fails(["--data", table], 1, table, "no such image file", os.path.join(self.dir, "missing.png"))

    def test_bad_csv(self):
        table = self.write("no-label.csv", "file,class\na.png,кот\n")
        self.assert_fails(["--data", table], 1, table, "label")
        table = self.write("no-file.csv", "path,label\na.png,кот\n")
        self.assert_fails(["--data", table], 1, table, "file")
        table = self.write("quote.csv", 'file,label\n"a.png,кот\n')
        self.assert_fails(["--data", table], 1, table, "line 2", "unterminated quote")
        table = self.write("short.csv", "label,file\nкот\n")
        self.assert_fails(["--data", table], 1, table, "line 2")
        table = self.write("empty.csv", "file,label\n")
        self.assert_fails(["--data", table], 1, table)
        table = self.write("bad.jsonl", '{"file": "a.png", "label": "кот"}\n{"file": 1}\n')
        self.assert_fails(["--data", table], 1, table, "line 2")
        other = self.write("data.txt", "a.png кот\n")
        self.assert_fails(["--data", other], 1, other, ".csv")

    def test_labels_not_covering_the_data(self):
        make_folder(self.dir)
        self.assert_fails(["--data", self.dir, "--label", "кот", "--label", "птица"], 1, "'пёс' (3 images")
        self.assert_fails(["--data", self.dir, "--label", "кот", "--label", "кот", "--label", "пёс",
                           "--label", "птица"], 1, "'кот' is given twice")

    def test_bad_label_map(self):
        make_folder(self.dir)
        missing = os.path.join(self.dir, "nope.csv")
        self.assert_fails(["--data", self.dir, "--label-map", missing], 1, missing)
        bad = self.write("map.csv", "cat,кот,extra\n")
        self.assert_fails(["--data", self.dir, "--label-map", bad], 1, bad, "line 1")

    def test_usage(self):
        make_folder(self.dir)
        self.assert_fails([], 2, "--data")
        self.assert_fails(["--data", self.dir, "--batch", "0"], 2, "--batch")
        self.assert_fails(["--data", self.dir, "--batch", "x"], 2, "--batch")
        self.assert_fails(["--data", self.dir, "stray"], 2, "stray")
        self.assert_fails(["--data", self.dir, "--top-k", "3"], 2, "unknown option --top-k")


if __name__ == "__main__":
    unittest.main(verbosity=2)
