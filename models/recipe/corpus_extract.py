#!/usr/bin/env python3
"""Extracts sealora's text corpora from Debian packages (see README.md here).

  corpus_extract.py general OUT.txt    the general pretraining mix
  corpus_extract.py domain OUTDIR      Linux kernel docs: held-out set and 3 sites

Standard library only. Output is deterministic: sources are read in sorted
order and every choice (caps, splits) depends on content or paths only.
general: one UTF-8 text file, documents separated by <|endoftext|> (the
separator sealora's datasets split on). domain: plain files under
OUTDIR/{heldout,site-a,site-b,site-c}/ keeping their relative paths."""
import glob
import gzip
import hashlib
import html
import html.parser
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

EOT = "<|endoftext|>"
DOC_BYTES = 32 * 1024       # long texts are cut into documents of about this size
GCIDE_CAP = 10 * 1024 * 1024  # GCIDE is dictionary-shaped: keep about 10 MB of it


def log(msg):
    print("corpus: " + msg, file=sys.stderr, flush=True)


def text_of(raw):
    """Bytes to text: UTF-8, or Latin-1 for the few older files."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def clean(t):
    t = t.replace(EOT, "<endoftext>").replace("\r\n", "\n").replace("\x00", "")
    t = re.sub(r"[ \t\xa0]+\n", "\n", t)
    t = re.sub(r"\n{3,}", "\n\n", t)
    return t.strip("\n") + "\n"


def split_docs(t, size=DOC_BYTES):
    """Cuts a long text into documents of about `size` bytes at blank lines."""
    out, cur, n = [], [], 0
    for para in t.split("\n\n"):
        cur.append(para)
        n += len(para) + 2
        if n >= size:
            out.append("\n\n".join(cur))
            cur, n = [], 0
    if cur:
        out.append("\n\n".join(cur))
    return [clean(d) for d in out if d.strip()]


def group(items, size=DOC_BYTES, sep="\n\n"):
    """Joins short items (verses, entries, fortunes) into documents."""
    out, cur, n = [], [], 0
    for it in items:
        cur.append(it)
        n += len(it) + len(sep)
        if n >= size:
            out.append(sep.join(cur))
            cur, n = [], 0
    if cur:
        out.append(sep.join(cur))
    return [clean(d) for d in out if d.strip()]


# ---- general sources ----

def bible():
    """One document per chapter: its heading ("Genesis 1") and its verses
    without their numbers."""
    out = subprocess.run(["bible", "-l", "0", "Gen1:1-Rev22:21"], capture_output=True,
                         check=True).stdout
    docs, chapter = [], []
    for line in text_of(out).splitlines():
        v = re.match(r"^\s+\d+ (.*)$", line)
        if v:
            chapter.append(v.group(1).strip())
        elif re.match(r"^\S.* \d+$", line):
            if len(chapter) > 1:
                docs.append(clean(chapter[0] + "\n\n" + " ".join(chapter[1:])))
            chapter = [line.strip()]
    if len(chapter) > 1:
        docs.append(clean(chapter[0] + "\n\n" + " ".join(chapter[1:])))
    return docs


def dictd_entries(path, skip_prefix="00-database"):
    """Entries of a dictd text: an entry starts at a line in column 0."""
    t = text_of(gzip.open(path).read())
    entries, cur = [], []
    for line in t.splitlines():
        if line and not line[0].isspace():
            if cur:
                entries.append("\n".join(cur))
            cur = [line]
        elif cur:
            cur.append(line)
    if cur:
        entries.append("\n".join(cur))
    return [e for e in entries if not e.startswith(skip_prefix)]


def gcide():
    entries = []
    for e in dictd_entries("/usr/share/dictd/gcide.dict.dz"):
        if not re.match(r"^[A-Za-z]", e) or " \\" not in e.split("\n", 1)[0]:
            continue  # front matter, not a dictionary entry
        e = re.sub(r"^\s*\[[^\]\n]*\]\s*$", "", e, flags=re.M)  # [1913 Webster] source tags
        e = re.sub(r" ?\\[^\\\n]*\\", "", e)                       # \Pro*nun"ci*a`tion\
        e = re.sub(r"\[[=^`'~\"]?[A-Za-z]{1,6}[=^`'~\"]?\]", "", e)  # [=a], [imac] accents
        e = e.replace("{", "").replace("}", "")
        entries.append(re.sub(r"\n\s*\n", "\n", e).strip())
    docs = group(entries, sep="\n")
    # Keep every k-th document so the cap samples the whole alphabet.
    total = sum(len(d) for d in docs)
    k = max(1, -(-total // GCIDE_CAP))
    return docs[::k]


def devil():
    t = "\n".join(dictd_entries("/usr/share/dictd/devil.dict.dz"))
    return split_docs(t)


def wordnet():
    lines = []
    for pos in ("noun", "verb", "adj", "adv"):
        for line in open("/usr/share/wordnet/data." + pos, encoding="utf-8", errors="replace"):
            if line.startswith("  ") or "|" not in line:
                continue  # licence header
            head, gloss = line.split("|", 1)
            f = head.split()
            n = int(f[3], 16)
            words = [f[4 + 2 * i].replace("_", " ") for i in range(n)]
            words = [re.sub(r"\([a-z]+\)$", "", w) for w in words]
            lines.append(", ".join(words) + ": " + gloss.strip())
    return group(lines, sep="\n")


def fortunes():
    items = []
    for p in sorted(glob.glob("/usr/share/games/fortunes/*")):
        if p.endswith((".dat", ".u8")) or os.path.islink(p) or os.path.isdir(p):
            continue
        for f in text_of(open(p, "rb").read()).split("\n%\n"):
            f = f.strip("%\n")
            if f.strip():
                items.append(f)
    return group(items)


def gnu_standards():
    docs = []
    for p in sorted(glob.glob("/usr/share/doc/gnu-standards/*.text.gz")):
        docs += split_docs(text_of(gzip.open(p).read()))
    return docs


class _Text(html.parser.HTMLParser):
    BLOCK = {"p", "div", "br", "li", "pre", "tr", "h1", "h2", "h3", "h4", "h5", "dt", "dd",
             "table", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        if tag in self.BLOCK:
            self.out.append("\n\n" if tag in ("p", "pre", "h1", "h2", "h3", "table") else "\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def debian_reference():
    docs = []
    for p in sorted(glob.glob("/usr/share/doc/debian-reference-en/docs/*.en.html")):
        parser = _Text()
        parser.feed(text_of(open(p, "rb").read()))
        t = html.unescape("".join(parser.out))
        t = re.sub(r"[ \t]+", " ", t)
        docs += split_docs(t)
    return docs


def dpkg_files(pkgs, pattern):
    out = subprocess.run(["dpkg", "-L"] + pkgs, capture_output=True, check=True).stdout
    return sorted(p for p in text_of(out).splitlines()
                  if re.search(pattern, p) and os.path.isfile(p) and not os.path.islink(p))


def git_doc():
    docs = []
    for p in dpkg_files(["git-doc"], r"\.txt$"):
        docs += split_docs(text_of(open(p, "rb").read()))
    return docs


def vim_help():
    docs = []
    for p in sorted(glob.glob("/usr/share/vim/vim*/doc/*.txt")):
        docs += split_docs(text_of(open(p, "rb").read()))
    return docs


def man_pages():
    pages = dpkg_files(["manpages", "manpages-dev"], r"/man/man[0-9][^/]*/[^/]+\.gz$")
    env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0", LC_ALL="C.UTF-8")

    def render(p):
        if gzip.open(p).read(64).startswith(b".so "):
            return ""  # a redirect to another page
        r = subprocess.run(["man", "-E", "UTF-8", "-l", p], capture_output=True, env=env)
        c = subprocess.run(["col", "-bx"], input=r.stdout, capture_output=True)
        return text_of(c.stdout)

    with ThreadPoolExecutor(max_workers=2) as ex:
        texts = list(ex.map(render, pages))
    docs = []
    for t in texts:
        if len(t) > 200:
            docs += split_docs(t)
    return docs


SOURCES = [
    ("KJV Bible (bible-kjv-text)", bible),
    ("GCIDE, capped (dict-gcide)", gcide),
    ("WordNet glosses (wordnet-base)", wordnet),
    ("fortunes (fortunes)", fortunes),
    ("Devil's Dictionary (dict-devil)", devil),
    ("GNU coding standards (gnu-standards)", gnu_standards),
    ("Debian Reference (debian-reference-en)", debian_reference),
    ("Git documentation (git-doc)", git_doc),
    ("Vim help (vim-runtime)", vim_help),
    ("man pages (manpages, manpages-dev)", man_pages),
]


def general(out):
    tmp = out + ".tmp"
    total = 0
    with open(tmp, "w", encoding="utf-8") as f:
        first = True
        for name, fn in SOURCES:
            docs = fn()
            size = sum(len(d.encode("utf-8")) for d in docs)
            total += size
            log("%-42s %6d documents %6.1f MB" % (name, len(docs), size / 1e6))
            for d in docs:
                if not first:
                    f.write(EOT)
                f.write(d)
                first = False
    os.replace(tmp, out)
    log("general mix: %.1f MB -> %s" % (total / 1e6, out))


# ---- the private domain ----

DOC_ROOT = "/usr/share/doc/linux-doc-6.1/Documentation"
SITE_A = ("networking", "driver-api")
SITE_B = ("admin-guide", "filesystems")


def domain_split(rel):
    """heldout when sha1(rel)'s first 8 hex digits, as an integer, are 0 mod
    20; else the site of its top folder (non-IID by topic)."""
    if int(hashlib.sha1(rel.encode("utf-8")).hexdigest()[:8], 16) % 20 == 0:
        return "heldout"
    top = rel.split("/", 1)[0]
    return "site-a" if top in SITE_A else "site-b" if top in SITE_B else "site-c"


def domain(outdir):
    files = []
    for dirpath, dirnames, filenames in os.walk(DOC_ROOT):
        dirnames.sort()
        for fn in sorted(filenames):
            if fn.endswith((".rst.gz", ".txt.gz")):
                rel = os.path.relpath(os.path.join(dirpath, fn), DOC_ROOT)[:-3]
                if rel.split("/", 1)[0] not in ("translations", "devicetree"):
                    files.append(rel)
    tmp = outdir + ".tmp"
    subprocess.run(["rm", "-rf", tmp], check=True)
    stats = {}
    for rel in files:
        split = domain_split(rel)
        t = clean(text_of(gzip.open(os.path.join(DOC_ROOT, rel + ".gz")).read()))
        dst = os.path.join(tmp, split, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w", encoding="utf-8") as f:
            f.write(t)
        n, b = stats.get(split, (0, 0))
        stats[split] = (n + 1, b + len(t.encode("utf-8")))
    subprocess.run(["rm", "-rf", outdir], check=True)
    os.replace(tmp, outdir)
    for split in sorted(stats):
        log("domain %-8s %5d files %5.1f MB" % (split, stats[split][0], stats[split][1] / 1e6))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("general", "domain"):
        sys.exit(__doc__)
    (general if sys.argv[1] == "general" else domain)(sys.argv[2])


main()
