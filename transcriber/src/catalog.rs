//! The official whisper.cpp ggml models: name, file, exact size, SHA-256 and languages.
//!
//! Names follow whisper.cpp (`models/download-ggml-model.sh` and the files of
//! huggingface.co/ggerganov/whisper.cpp): a size (`tiny` … `large-v3-turbo`), `.en` for the
//! English-only variant and `-q5_0`/`-q5_1`/`-q8_0` for a quantized one; the file is always
//! `ggml-NAME.bin`. Every entry carries the SHA-256 and the byte size of its file, so no entry
//! needs upstream's SHA-1 (`models/README.md`) and that is not used.
//!
//! Where the values come from: the Hugging Face LFS metadata of ggerganov/whisper.cpp
//! (revision `5359861c739e955e79d9a303bcbc70fb988958b1`), as published in public projects
//! that pin these files: a captured `/api/models/ggerganov/whisper.cpp?blobs=true` response
//! (SHA-256 and size of all 33 files) and a table generated from the same API's tree listing
//! (SHA-256 and size of all 33) agree byte for byte; a Nix hex table and a Go catalog built
//! from the same LFS objects agree with them for every entry they carry, and so do the Nix SRI
//! hashes (`sha256-…`, decoded to hex) published for the unquantized models and most `q5`
//! ones. Nothing here is computed from a download.
//!
//! This module only describes models; fetching them is the binary's job (`webcall model`).

use std::fmt;

/// Which languages a model transcribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// The 99 languages Whisper was trained on (Russian and English included).
    Multilingual,
    /// English only (the `.en` models): a little better on English, useless for anything else.
    English,
}

impl Language {
    /// What whisper.cpp's naming says: `.en` in the name is English-only.
    #[must_use]
    pub fn of_name(name: &str) -> Self {
        if name.contains(".en") {
            Self::English
        } else {
            Self::Multilingual
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Multilingual => "multilingual",
            Self::English => "English only",
        })
    }
}

/// One model a catalog knows how to fetch and check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// As whisper.cpp names it: `base`, `small.en-q8_0`, `large-v3-turbo`.
    pub name: String,
    /// The exact size of the file, when known (every official entry has it).
    pub bytes: Option<u64>,
    /// Lowercase hex SHA-256 of the whole file.
    pub sha256: String,
    pub language: Language,
}

impl Model {
    /// A model entry with a checked name and hash (the hash is lowercased).
    ///
    /// # Errors
    /// [`crate::Error::Format`] for a name that [`is_model_name`] refuses or a hash that is not
    /// 64 hex digits.
    pub fn new(
        name: &str,
        bytes: Option<u64>,
        sha256: &str,
        language: Option<Language>,
    ) -> Result<Self, crate::Error> {
        if !is_model_name(name) {
            return Err(crate::Error::Format(format!(
                "{name:?} is not a model name (letters, digits, '.', '-' and '_'; no path, no .bin)"
            )));
        }
        if !is_sha256_hex(sha256) {
            return Err(crate::Error::Format(format!(
                "the sha256 of {name} must be 64 hex digits"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            bytes,
            sha256: sha256.to_ascii_lowercase(),
            language: language.unwrap_or_else(|| Language::of_name(name)),
        })
    }

    /// `ggml-NAME.bin`.
    #[must_use]
    pub fn file_name(&self) -> String {
        file_name(&self.name)
    }
}

/// `ggml-NAME.bin`: the file name whisper.cpp publishes a model under.
#[must_use]
pub fn file_name(name: &str) -> String {
    format!("ggml-{name}.bin")
}

/// Whether `value` is a model name rather than a path: ASCII letters, digits, `.`, `-` and
/// `_`, no path separator, not ending in `.bin`, and not `.` or `..`.
#[must_use]
pub fn is_model_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value != "."
        && value != ".."
        && !value.ends_with(".bin")
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Whether `value` is a SHA-256 digest written as 64 hex digits.
#[must_use]
pub fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// (name, exact bytes, sha256) of every file whisper.cpp publishes; see the module doc for
/// where the values come from.
// One line per file, as a table: easier to compare with a source than rustfmt's layout.
#[rustfmt::skip]
const OFFICIAL: &[(&str, u64, &str)] = &[
    ("tiny",                77_691_713,    "be07e048e1e599ad46341c8d2a135645097a538221678b7acdd1b1919c6e1b21"),
    ("tiny-q5_1",           32_152_673,    "818710568da3ca15689e31a743197b520007872ff9576237bda97bd1b469c3d7"),
    ("tiny-q8_0",           43_537_433,    "c2085835d3f50733e2ff6e4b41ae8a2b8d8110461e18821b09a15c40c42d1cca"),
    ("tiny.en",             77_704_715,    "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f"),
    ("tiny.en-q5_1",        32_166_155,    "c77c5766f1cef09b6b7d47f21b546cbddd4157886b3b5d6d4f709e91e66c7c2b"),
    ("tiny.en-q8_0",        43_550_795,    "5bc2b3860aa151a4c6e7bb095e1fcce7cf12c7b020ca08dcec0c6d018bb7dd94"),
    ("base",                147_951_465,   "60ed5bc3dd14eea856493d334349b405782ddcaf0028d4b5df4088345fba2efe"),
    ("base-q5_1",           59_707_625,    "422f1ae452ade6f30a004d7e5c6a43195e4433bc370bf23fac9cc591f01a8898"),
    ("base-q8_0",           81_768_585,    "c577b9a86e7e048a0b7eada054f4dd79a56bbfa911fbdacf900ac5b567cbb7d9"),
    ("base.en",             147_964_211,   "a03779c86df3323075f5e796cb2ce5029f00ec8869eee3fdfb897afe36c6d002"),
    ("base.en-q5_1",        59_721_011,    "4baf70dd0d7c4247ba2b81fafd9c01005ac77c2f9ef064e00dcf195d0e2fdd2f"),
    ("base.en-q8_0",        81_781_811,    "a4d4a0768075e13cfd7e19df3ae2dbc4a68d37d36a7dad45e8410c9a34f8c87e"),
    ("small",               487_601_967,   "1be3a9b2063867b937e64e2ec7483364a79917e157fa98c5d94b5c1fffea987b"),
    ("small-q5_1",          190_085_487,   "ae85e4a935d7a567bd102fe55afc16bb595bdb618e11b2fc7591bc08120411bb"),
    ("small-q8_0",          264_464_607,   "49c8fb02b65e6049d5fa6c04f81f53b867b5ec9540406812c643f177317f779f"),
    ("small.en",            487_614_201,   "c6138d6d58ecc8322097e0f987c32f1be8bb0a18532a3f88f734d1bbf9c41e5d"),
    ("small.en-q5_1",       190_098_681,   "bfdff4894dcb76bbf647d56263ea2a96645423f1669176f4844a1bf8e478ad30"),
    ("small.en-q8_0",       264_477_561,   "67a179f608ea6114bd3fdb9060e762b588a3fb3bd00c4387971be4d177958067"),
    ("medium",              1_533_763_059, "6c14d5adee5f86394037b4e4e8b59f1673b6cee10e3cf0b11bbdbee79c156208"),
    ("medium-q5_0",         539_212_467,   "19fea4b380c3a618ec4723c3eef2eb785ffba0d0538cf43f8f235e7b3b34220f"),
    ("medium-q8_0",         823_369_779,   "42a1ffcbe4167d224232443396968db4d02d4e8e87e213d3ee2e03095dea6502"),
    ("medium.en",           1_533_774_781, "cc37e93478338ec7700281a7ac30a10128929eb8f427dda2e865faa8f6da4356"),
    ("medium.en-q5_0",      539_225_533,   "76733e26ad8fe1c7a5bf7531a9d41917b2adc0f20f2e4f5531688a8c6cd88eb0"),
    ("medium.en-q8_0",      823_382_461,   "43fa2cd084de5a04399a896a9a7a786064e221365c01700cea4666005218f11c"),
    ("large-v1",            3_094_623_691, "7d99f41a10525d0206bddadd86760181fa920438b6b33237e3118ff6c83bb53d"),
    ("large-v2",            3_094_623_691, "9a423fe4d40c82774b6af34115b8b935f34152246eb19e80e376071d3f999487"),
    ("large-v2-q5_0",       1_080_732_091, "3a214837221e4530dbc1fe8d734f302af393eb30bd0ed046042ebf4baf70f6f2"),
    ("large-v2-q8_0",       1_656_129_691, "fef54e6d898246a65c8285bfa83bd1807e27fadf54d5d4e81754c47634737e8c"),
    ("large-v3",            3_095_033_483, "64d182b440b98d5203c4f9bd541544d84c605196c4f7b845dfa11fb23594d1e2"),
    ("large-v3-q5_0",       1_081_140_203, "d75795ecff3f83b5faa89d1900604ad8c780abd5739fae406de19f23ecd98ad1"),
    ("large-v3-turbo",      1_624_555_275, "1fc70f774d38eb169993ac391eea357ef47c88757ef72ee5943879b7e8e2bc69"),
    ("large-v3-turbo-q5_0", 574_041_195,   "394221709cd5ad1f40c46e6031ca61bce88931e6e088c188294c6d5a55ffa7e2"),
    ("large-v3-turbo-q8_0", 874_188_075,   "317eb69c11673c9de1e1f0d459b253999804ec71ac4c23c17ecf5fbe24e259a1"),
];

/// The models that can be fetched: the official ones, plus any an operator adds (a mirror with
/// extra or re-published models).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    models: Vec<Model>,
}

impl Catalog {
    /// Every model whisper.cpp publishes, smallest size class first.
    #[must_use]
    pub fn official() -> Self {
        let models = OFFICIAL
            .iter()
            .map(|&(name, bytes, sha256)| Model {
                name: name.to_owned(),
                bytes: Some(bytes),
                sha256: sha256.to_owned(),
                language: Language::of_name(name),
            })
            .collect();
        Self { models }
    }

    /// Adds `extra` models; one with the name of a model already here replaces it (a mirror
    /// that publishes its own build under an official name says so with its own hash).
    pub fn extend(&mut self, extra: impl IntoIterator<Item = Model>) {
        for model in extra {
            match self.models.iter_mut().find(|m| m.name == model.name) {
                Some(slot) => *slot = model,
                None => self.models.push(model),
            }
        }
    }

    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    #[must_use]
    pub fn models(&self) -> &[Model] {
        &self.models
    }

    /// Up to five names a mistyped `name` probably meant: names that start with it, then the
    /// ones at most two edits away, nearest first.
    #[must_use]
    pub fn close_to(&self, name: &str) -> Vec<&str> {
        let wanted = name.to_ascii_lowercase();
        let mut scored: Vec<(usize, &str)> = self
            .models
            .iter()
            .filter_map(|m| {
                if wanted.len() >= 2 && m.name.starts_with(&wanted) {
                    return Some((0, m.name.as_str()));
                }
                let distance = edit_distance(&wanted, &m.name);
                (distance <= 2).then_some((distance, m.name.as_str()))
            })
            .collect();
        scored.sort_by_key(|&(distance, _)| distance);
        scored.into_iter().take(5).map(|(_, name)| name).collect()
    }
}

/// Levenshtein distance over bytes (names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_official_entry_has_a_valid_name_a_sha256_and_a_size() {
        let catalog = Catalog::official();
        assert_eq!(catalog.models().len(), 33);
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        for m in catalog.models() {
            assert!(is_model_name(&m.name), "{}", m.name);
            assert!(is_sha256_hex(&m.sha256), "{}", m.name);
            assert_eq!(m.sha256, m.sha256.to_ascii_lowercase());
            assert!(m.bytes.is_some_and(|b| b > 30_000_000), "{}", m.name);
            assert!(names.insert(m.name.clone()), "duplicate {}", m.name);
            assert!(hashes.insert(m.sha256.clone()), "duplicate hash {}", m.name);
        }
        for name in [
            "tiny",
            "base",
            "base.en",
            "base-q5_1",
            "base-q8_0",
            "small.en-q8_0",
            "medium",
            "large-v3-turbo",
            "large-v3-turbo-q5_0",
            "large-v3-turbo-q8_0",
        ] {
            assert!(catalog.get(name).is_some(), "{name}");
        }
    }

    #[test]
    fn the_file_name_and_language_follow_whisper_cpp_naming() {
        let catalog = Catalog::official();
        let m = catalog.get("small.en-q8_0").expect("listed");
        assert_eq!(m.file_name(), "ggml-small.en-q8_0.bin");
        assert_eq!(m.language, Language::English);
        let m = catalog.get("large-v3-turbo-q5_0").expect("listed");
        assert_eq!(m.language, Language::Multilingual);
        assert_eq!(m.bytes, Some(574_041_195));
    }

    #[test]
    fn a_name_is_told_apart_from_a_path() {
        for name in ["base", "small.en-q8_0", "large-v3-turbo", "my_model.v2"] {
            assert!(is_model_name(name), "{name}");
        }
        for path in [
            "",
            ".",
            "..",
            "ggml-base.bin",
            "/models/ggml-base.bin",
            "models/base",
            "./base",
            "C:\\models\\base",
            "base model",
        ] {
            assert!(!is_model_name(path), "{path}");
        }
    }

    #[test]
    fn extra_models_are_added_and_replace_an_official_name() {
        let mut catalog = Catalog::official();
        let hash = "AB".repeat(32);
        catalog.extend([
            Model::new("mirror-only", Some(5), &hash, None).expect("valid"),
            Model::new("base", None, &hash, Some(Language::English)).expect("valid"),
        ]);
        assert_eq!(catalog.models().len(), 34);
        let base = catalog.get("base").expect("listed");
        assert_eq!(
            (base.bytes, base.sha256.as_str()),
            (None, &*"ab".repeat(32))
        );
        assert_eq!(base.language, Language::English);
        assert!(Model::new("../x", None, &hash, None).is_err());
        assert!(Model::new("x", None, "abc", None).is_err());
    }

    #[test]
    fn a_mistyped_name_suggests_the_models_it_probably_meant() {
        let catalog = Catalog::official();
        assert_eq!(catalog.close_to("bse").first(), Some(&"base"));
        assert!(catalog
            .close_to("large-v3-turbo-q8")
            .contains(&"large-v3-turbo-q8_0"));
        assert!(catalog.close_to("smal.en").contains(&"small.en"));
        assert!(catalog.close_to("whisper-xl").is_empty());
    }
}
