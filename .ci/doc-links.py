"""Fails if our own docs show an intra-doc link as text.

rustdoc renders a link it resolved but cannot place (the target crate's docs
are not there) as `[<code>Name</code>]`, or as an href like `crate_x::Name`.
Only the items' own docs and the index summaries are checked: docs inlined
from other crates' blanket impls (tracing's) are not ours to fix.
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
own = re.compile(r'<details class="toggle top-doc"[^>]*>.*?</details>|<dd>.*?</dd>', re.S)
unrendered = re.compile(r'\[<code>[A-Za-z_:]+</code>\]|href="[a-z_]+::[^"]*"')
bad = 0
for page in sorted(root.glob("session*/**/*.html")):
    for block in own.findall(page.read_text(errors="replace")):
        for hit in unrendered.findall(block):
            print(f"{page}: {hit}")
            bad += 1
sys.exit(1 if bad else 0)
