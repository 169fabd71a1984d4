//! How people name specialties and languages, in English and French, and
//! which of our slugs and codes they mean: "cardiologue", "cardiologist" and
//! "cardio" are `cardiology`; "GP" and "généraliste" are `general-practice`;
//! "French" and "français" are `fr`. A typo or two is forgiven in longer
//! words. Search forms use this to understand what was typed; the API keeps
//! taking the slugs and codes themselves.

use unicode_normalization::UnicodeNormalization;

/// Each common specialty's slug, its names in English and in French, and the
/// other words people use for it (all written plainly: lower case, no accents).
const SPECIALTY_WORDS: &[(&str, &str, &str, &[&str])] = &[
    (
        "general-practice",
        "General practice",
        "Médecine générale",
        &[
            "gp",
            "general practitioner",
            "family doctor",
            "family medicine",
            "generaliste",
            "medecin generaliste",
            "medecin traitant",
            "medecine generale",
        ],
    ),
    ("cardiology", "Cardiology", "Cardiologie", &["cardiologist", "cardio", "heart", "cardiologue", "coeur"]),
    ("dermatology", "Dermatology", "Dermatologie", &["dermatologist", "derma", "skin", "dermatologue", "peau"]),
    (
        "pediatrics",
        "Paediatrics",
        "Pédiatrie",
        &["pediatrician", "paediatrician", "paediatrics", "children", "pediatre", "pediatrie", "enfant"],
    ),
    (
        "gynecology",
        "Gynaecology",
        "Gynécologie",
        &["gynecologist", "gynaecologist", "gynaecology", "gyneco", "gynecologue", "gynecologie"],
    ),
    (
        "ophthalmology",
        "Ophthalmology",
        "Ophtalmologie",
        &["ophthalmologist", "eye doctor", "eyes", "ophtalmo", "ophtalmologue", "ophtalmologie", "yeux"],
    ),
    ("psychiatry", "Psychiatry", "Psychiatrie", &["psychiatrist", "psychiatre", "psychiatrie", "psy"]),
    (
        "orthopedics",
        "Orthopaedics",
        "Orthopédie",
        &["orthopedist", "orthopaedist", "orthopaedics", "orthopediste", "orthopedie", "bones"],
    ),
    (
        "ent",
        "Ear, nose and throat",
        "ORL",
        &["ear nose and throat", "ear nose throat", "otolaryngology", "otolaryngologist", "orl", "oto rhino"],
    ),
    ("neurology", "Neurology", "Neurologie", &["neurologist", "neuro", "neurologue", "neurologie"]),
    (
        "endocrinology",
        "Endocrinology",
        "Endocrinologie",
        &["endocrinologist", "endocrino", "diabetes", "endocrinologue", "endocrinologie", "diabete"],
    ),
    (
        "physiotherapy",
        "Physiotherapy",
        "Kinésithérapie",
        &["physiotherapist", "physio", "physical therapy", "kinesitherapeute", "kinesitherapie", "kine"],
    ),
];

/// Languages doctors speak: the code, and its names in English, in French and
/// in the language itself (written plainly).
const LANGUAGE_WORDS: &[(&str, &[&str])] = &[
    ("fr", &["french", "francais"]),
    ("en", &["english", "anglais"]),
    ("es", &["spanish", "espagnol", "espanol", "castellano"]),
    ("de", &["german", "allemand", "deutsch"]),
    ("it", &["italian", "italien", "italiano"]),
    ("pt", &["portuguese", "portugais", "portugues"]),
    ("nl", &["dutch", "neerlandais", "nederlands"]),
    ("ar", &["arabic", "arabe"]),
    ("zh", &["chinese", "mandarin", "chinois"]),
    ("ru", &["russian", "russe"]),
    ("pl", &["polish", "polonais", "polski"]),
    ("tr", &["turkish", "turc", "turkce"]),
    ("ja", &["japanese", "japonais"]),
    ("hi", &["hindi"]),
];

/// What a typed word was taken to mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Understood {
    /// The slug or code itself.
    Exactly(&'static str),
    /// A name or another word for it ("cardiologue"), or one with a typo.
    Meant(&'static str),
}

impl Understood {
    pub fn value(self) -> &'static str {
        match self {
            Understood::Exactly(v) | Understood::Meant(v) => v,
        }
    }
}

/// Lower case, accents and punctuation gone, spaces single: "Médecin  Généraliste" → "medecin generaliste".
pub fn plain(raw: &str) -> String {
    let folded: String = raw
        .nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "sports medicine" → "Sports medicine".
fn capitalised(words: &str) -> String {
    let mut chars = words.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// How many typos a word of this length may carry and still be recognised.
fn forgiven(len: usize) -> usize {
    match len {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

/// The one entry `word` is closest to, if close enough and not a tie.
fn closest<'a>(word: &str, entries: impl Iterator<Item = (&'static str, &'a str)>) -> Option<&'static str> {
    let limit = forgiven(word.chars().count());
    if limit == 0 {
        return None;
    }
    let mut best: Option<(usize, &'static str)> = None;
    let mut tied = false;
    for (value, candidate) in entries {
        let d = strsim::damerau_levenshtein(word, candidate);
        match best {
            Some((b, v)) if d == b && v != value => tied = true,
            Some((b, _)) if d >= b => {}
            _ => {
                best = Some((d, value));
                tied = false;
            }
        }
    }
    best.filter(|(d, _)| *d <= limit && !tied).map(|(_, v)| v)
}

fn specialty_words() -> impl Iterator<Item = (&'static str, String)> {
    SPECIALTY_WORDS.iter().flat_map(|(slug, en, fr, others)| {
        [plain(slug), plain(en), plain(fr)]
            .into_iter()
            .chain(others.iter().map(|w| w.to_string()))
            .map(move |w| (*slug, w))
    })
}

/// The common specialty `raw` names, in English or French, forgiving typos.
pub fn specialty(raw: &str) -> Option<Understood> {
    let word = plain(raw);
    if let Some((slug, ..)) = SPECIALTY_WORDS.iter().find(|(slug, ..)| raw.trim() == *slug) {
        return Some(Understood::Exactly(slug));
    }
    let words: Vec<_> = specialty_words().collect();
    if let Some((slug, _)) = words.iter().find(|(_, w)| *w == word) {
        return Some(Understood::Meant(slug));
    }
    closest(&word, words.iter().map(|(slug, w)| (*slug, w.as_str()))).map(Understood::Meant)
}

/// The specialties closest to `raw`, at most `n`, for "did you mean".
pub fn specialty_suggestions(raw: &str, n: usize) -> Vec<&'static str> {
    let word = plain(raw);
    let mut scored: Vec<(f64, &'static str)> = Vec::new();
    for (slug, w) in specialty_words() {
        let score = strsim::jaro_winkler(&word, &w);
        match scored.iter_mut().find(|(_, s)| *s == slug) {
            Some(best) if best.0 < score => best.0 = score,
            Some(_) => {}
            None => scored.push((score, slug)),
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().filter(|(s, _)| *s >= 0.7).take(n).map(|(_, slug)| slug).collect()
}

/// A specialty's name for people, in English or French (`fr`); the slug
/// itself, made readable, for specialties not in the common list.
pub fn specialty_label(slug: &str, french: bool) -> String {
    match SPECIALTY_WORDS.iter().find(|(s, ..)| *s == slug) {
        Some((_, en, fr, _)) => (if french { fr } else { en }).to_string(),
        None => capitalised(&slug.replace('-', " ")),
    }
}

/// A language's English name for people ("fr" → "French"); the code itself
/// for languages not in the list.
pub fn language_label(code: &str) -> String {
    match LANGUAGE_WORDS.iter().find(|(c, _)| *c == code) {
        Some((_, names)) => capitalised(names[0]),
        None => code.to_string(),
    }
}

/// The language code `raw` names ("French", "français", "fr"), forgiving typos.
pub fn language(raw: &str) -> Option<Understood> {
    let word = plain(raw);
    if let Some((code, _)) = LANGUAGE_WORDS.iter().find(|(code, _)| raw.trim() == *code) {
        return Some(Understood::Exactly(code));
    }
    let words = LANGUAGE_WORDS.iter().flat_map(|(code, names)| names.iter().map(move |n| (*code, *n)));
    if let Some((code, _)) = words.clone().find(|(_, n)| *n == word) {
        return Some(Understood::Meant(code));
    }
    closest(&word, words).map(Understood::Meant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Understood::*;

    #[test]
    fn specialties_are_understood_as_people_name_them_in_english_and_french() {
        for (typed, slug) in [
            ("cardiology", Exactly("cardiology")),
            ("Cardiologist", Meant("cardiology")),
            ("cardio", Meant("cardiology")),
            ("cardiologie", Meant("cardiology")),
            ("Cardiologue", Meant("cardiology")),
            ("GP", Meant("general-practice")),
            ("généraliste", Meant("general-practice")),
            ("Médecin généraliste", Meant("general-practice")),
            ("general practice", Meant("general-practice")),
            ("ORL", Meant("ent")),
            ("kiné", Meant("physiotherapy")),
            ("pédiatre", Meant("pediatrics")),
        ] {
            assert_eq!(specialty(typed), Some(slug), "{typed}");
        }
    }

    #[test]
    fn typos_are_forgiven_in_longer_words_only() {
        assert_eq!(specialty("cardiolgy"), Some(Meant("cardiology")));
        assert_eq!(specialty("dermatolgist"), Some(Meant("dermatology")));
        assert_eq!(specialty("opthalmology"), Some(Meant("ophthalmology")));
        assert_eq!(specialty("neurologie "), Some(Meant("neurology")));
        // Short words must be exact: "psi" is not "psy", and nonsense is nothing.
        assert_eq!(specialty("psi"), None);
        assert_eq!(specialty("plumbing"), None);
        assert_eq!(specialty(""), None);
        // Not a common one: left to the caller (doctors may list any specialty).
        assert_eq!(specialty("sports-medicine"), None);
    }

    #[test]
    fn suggestions_name_the_closest_specialties() {
        let s = specialty_suggestions("cardiac surgeon", 3);
        assert_eq!(s.first(), Some(&"cardiology"), "{s:?}");
        assert!(specialty_suggestions("zzzzzz", 3).is_empty());
    }

    #[test]
    fn languages_are_understood_by_name_and_code() {
        assert_eq!(language("fr"), Some(Exactly("fr")));
        assert_eq!(language("French"), Some(Meant("fr")));
        assert_eq!(language("français"), Some(Meant("fr")));
        assert_eq!(language("Deutsch"), Some(Meant("de")));
        assert_eq!(language("Englsh"), Some(Meant("en")));
        assert_eq!(language("klingon"), None);
    }

    #[test]
    fn labels_are_human_in_both_languages() {
        assert_eq!(specialty_label("general-practice", false), "General practice");
        assert_eq!(specialty_label("general-practice", true), "Médecine générale");
        assert_eq!(specialty_label("sports-medicine", false), "Sports medicine");
        assert_eq!(language_label("fr"), "French");
        assert_eq!(language_label("xx"), "xx");
    }

    #[test]
    fn plain_folds_case_accents_and_punctuation() {
        assert_eq!(plain("  Médecin-Généraliste! "), "medecin generaliste");
    }
}
