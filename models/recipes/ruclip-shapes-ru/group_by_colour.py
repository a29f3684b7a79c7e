#!/usr/bin/env python3
"""Writes DIR/captions-by-colour.csv: DIR/captions.csv with rows ordered by the
colour of their label (ruclip synth's labels.csv), shuffled within a colour.
With `ruclip train --group 32`, a batch is then blocks of 32 pictures of one
colour each: inside a block colour says nothing, so the contrastive loss
pushes the image tower to tell shapes apart. With --labels, the captions are
the short labels themselves ("красный круг") and the file is
DIR/labels-by-colour.csv: inside a block the loss is then a plain choice
between the shape words. With --both, every picture comes twice, with its
caption and with its label (DIR/both-by-colour.csv).

    group_by_colour.py DIR [SEED] [--labels | --both]
"""
import csv
import random
import sys


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    use_labels, both = "--labels" in sys.argv, "--both" in sys.argv
    folder = args[0]
    rng = random.Random(int(args[1]) if len(args) > 1 else 1)
    with open(f"{folder}/captions.csv", newline="", encoding="utf-8") as f:
        captions = list(csv.reader(f))
    with open(f"{folder}/labels.csv", newline="", encoding="utf-8") as f:
        labels = dict((row[0], row[1]) for row in list(csv.reader(f))[1:])
    header, rows = captions[0], captions[1:]
    if use_labels:
        rows = [[row[0], labels[row[0]]] for row in rows]
    elif both:
        rows = rows + [[row[0], labels[row[0]]] for row in rows]
    by_colour = {}
    for row in rows:
        colour = labels[row[0]].split()[0][:-2]  # "красный круг" / "красная звезда" -> "красн"
        by_colour.setdefault(colour, []).append(row)
    out = []
    for colour in sorted(by_colour):
        group = by_colour[colour]
        rng.shuffle(group)
        out.extend(group)
    name = "labels-by-colour.csv" if use_labels else "both-by-colour.csv" if both else "captions-by-colour.csv"
    with open(f"{folder}/{name}", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(out)


if __name__ == "__main__":
    main()
