//! The label order and the fixed evaluation set, through the library functions both stages use.

use doodle_model::{Dataset, Metadata};
use doodle_retrain::evalset::{self, EvalRule, RULE_KEY, Sources};
use doodle_retrain::retrain;

use crate::helpers::*;

/// The base model's metadata, as a later generation of the pipeline would record it: one more
/// category learned (`fish`), the evaluation rule inherited.
fn second_generation() -> Metadata {
    let base = load(&base_model()).metadata().clone();
    let rule = EvalRule::for_champion(&base, 0.25).unwrap();
    let mut meta = base;
    meta.categories.push("fish".into());
    meta.training = serde_json::json!({ "mode": "fine-tune (final layer)", RULE_KEY: rule });
    meta
}

#[test]
fn known_categories_keep_their_order_and_new_ones_are_appended_once_they_can_be_judged() {
    let p = Pipeline::new("", "");
    p.user_drawings("old", "fish", &shared_rows("fish", 0..60));
    p.user_drawings("new", "dog", &shared_rows("dog", 0..80));
    p.user_drawings("old", "cat", &shared_rows("cat", 0..40));
    p.user_drawings("new", "cat", &shared_rows("cat", 40..80));
    // Too few to be judged (5 evaluation drawings are needed): waits.
    p.user_drawings("new", "eye", &shared_rows("eye", 0..3));
    let prepared = retrain::prepare(&p.settings(), &second_generation()).unwrap();
    assert_eq!(
        prepared.categories,
        names(&["apple", "bicycle", "rainbow", "fish", "cat", "dog"])
    );
    assert_eq!(prepared.new_categories, names(&["cat", "dog"]));
    let counts = prepared.split.eval.class_counts();
    assert!(counts[4] >= 5 && counts[5] >= 5, "{counts:?}");
}

#[test]
fn the_evaluation_set_ignores_file_order_and_is_never_trained_on() {
    let categories = names(&["apple", "bicycle", "rainbow", "house"]);
    let rule = EvalRule::for_champion(load(&base_model()).metadata(), 0.25).unwrap();
    let house = shared_rows("house", 0..120);
    let apples = shared_rows("apple", 1000..1100);

    let a = Pipeline::new("", "");
    a.user_drawings("new", "house", &house);
    a.user_drawings("new", "apple", &apples);
    let first = evalset::split(&Sources::new(&a.settings()), &categories, &rule).unwrap();

    // The same drawings, reversed and spread over old/ and new/ as later merges leave them.
    let b = Pipeline::new("", "");
    let reversed: Vec<u8> = house.chunks(784).rev().flatten().copied().collect();
    b.user_drawings("old", "house", &reversed[..60 * 784]);
    b.user_drawings("new", "house", &reversed[60 * 784..]);
    b.user_drawings("old", "apple", &apples);
    let second = evalset::split(&Sources::new(&b.settings()), &categories, &rule).unwrap();

    assert_eq!(first.summary, second.summary);
    assert_eq!(digests(&first.eval), digests(&second.eval));
    let s = &first.summary;
    assert!(s.eval_user > 20 && s.eval_user < 90, "{s:?}");
    assert_eq!(
        s.eval_drawings + s.pool_drawings + s.duplicates_excluded,
        3 * BASE_ROWS + 220
    );

    // The base part is exactly what the base model held out for its own validation.
    let base = Dataset::load(&[base_data()], &names(&BASE_CATEGORIES), None).unwrap();
    let held_out = base.split(BASE_VAL_FRACTION, BASE_SEED).1;
    assert_eq!(s.eval_base, held_out.len());
    assert!(digests(&held_out).is_subset(&digests(&first.eval)));

    // What stage 5 trains on shares no drawing with it.
    let (_, pool) = retrain::training_data(&a.settings(), load(&base_model()).metadata()).unwrap();
    assert!(pool.len() > 1000);
    assert!(digests(&pool).is_disjoint(&digests(&first.eval)));
}

#[test]
fn a_base_folder_that_is_not_the_models_training_data_is_refused() {
    let p = Pipeline::new("", "");
    let mut settings = p.settings();
    settings.model.data_dir = quickdraw();
    let err = retrain::prepare(&settings, load(&base_model()).metadata()).unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot reproduce the held-out split"),
        "{err:#}"
    );
}
