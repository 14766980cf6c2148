# Writes normalization_cases.json: random strings over characters that exercise normalization (combining marks,
# precomposed letters, Hangul syllables and jamo, compatibility forms, singletons, composition exclusions) with
# their NFC, NFD, NFKC and NFKD forms from Python's unicodedata (Python 3.13: Unicode 15.1, as the engine's tables).
import json, random, unicodedata as u
rng = random.Random(1234)
pool = [cp for cp in range(0x20, 0x30000) if not 0xD800 <= cp <= 0xDFFF and (u.decomposition(chr(cp)) or u.combining(chr(cp)))]
pool += list(range(0x1100, 0x1113)) + list(range(0x1161, 0x1176)) + list(range(0x11A8, 0x11C3)) + [0x41, 0x61, 0x65, 0x6F, 0x20]
cases = []
for i in range(400):
    s = ''.join(chr(rng.choice(pool)) for _ in range(rng.randint(1, 8)))
    cases.append({"text": s, **{f: u.normalize(f, s) for f in ("NFC", "NFD", "NFKC", "NFKD")}})
with open("normalization_cases.json", "w", encoding="utf-8") as f:
    f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=True) for c in cases) + "\n]\n")
