//! Model card parsing.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use sieve_data::{parse_class_names, DataError, Dim, InputSpec, ModelCard, OutputKind};

const MOBILENET: &str = r#"
name = "mobilenet_v2_1.0_224"
opset = 13
params = 3489097
some_future_field = { nested = true }

[input]
name = "input"
shape = ["N", 3, 224, 224]
pixel_range = [0, 255]
channels = "RGB"

[output]
shape = ["N", 1001]
kind = "probabilities"
num_classes = 1001
background_offset = 1
label_file = "data/imagenet/synset_words.txt"

[dataset]
name = "ImageNet (ILSVRC2012)"

[accuracy]
test_top1 = 0.784615
validation_top1 = 0.849
unknown_metric = 3

[provenance]
license = "Apache-2.0"
"#;

#[test]
fn parses_a_card_leniently() {
    let c = ModelCard::parse(MOBILENET, Path::new("/m/mobilenet/model.toml")).unwrap();
    assert_eq!(c.name, "mobilenet_v2_1.0_224");
    assert_eq!(c.input.shape[0], Dim::Symbol("N".into()));
    assert_eq!(
        c.input_spec().unwrap(),
        InputSpec {
            channels: 3,
            h: 224,
            w: 224
        }
    );
    assert_eq!(c.input.pixel_range.unwrap()[1].as_f64(), 255.0);
    assert_eq!(c.output.kind, OutputKind::Probabilities);
    assert_eq!(c.output.num_classes, 1001);
    assert_eq!(c.class_of_output(0), None);
    assert_eq!(c.class_of_output(1), Some(0));
    assert_eq!(c.class_of_output(1000), Some(999));
    assert_eq!(c.class_of_output(1001), None);
    assert_eq!(c.accuracy.as_ref().unwrap().test_top1, Some(0.784615));
    assert_eq!(
        c.resolve("reference/x.npy"),
        Path::new("/m/mobilenet/reference/x.npy")
    );
    assert_eq!(
        c.label_file_candidates()[0],
        Path::new("/m/mobilenet/../../data/imagenet/synset_words.txt")
    );
    // No label file there: an error, and the numeric fallback.
    assert!(c.class_names().is_err());
    let names = c.class_names_or_indices();
    assert_eq!(names.len(), 1000);
    assert_eq!(names[999], "999");
}

#[test]
fn logits_and_other_kinds() {
    let t = MOBILENET.replace("\"probabilities\"", "\"logits\"");
    let c = ModelCard::parse(&t, Path::new("m.toml")).unwrap();
    assert_eq!(c.output.kind, OutputKind::Logits);
    let t = MOBILENET.replace("\"probabilities\"", "\"scores\"");
    let c = ModelCard::parse(&t, Path::new("m.toml")).unwrap();
    assert_eq!(c.output.kind, OutputKind::Other);
}

#[test]
fn bad_cards_are_errors_naming_the_file() {
    for (bad, what) in [
        (MOBILENET.replace("num_classes = 1001\n", ""), "num_classes"),
        (
            MOBILENET.replace("[\"N\", 3, 224, 224]", "[\"N\", 3, 224]"),
            "shape",
        ),
        (
            MOBILENET.replace("[\"N\", 3, 224, 224]", "[\"N\", \"C\", 224, 224]"),
            "shape",
        ),
        ("name = ".to_string(), ""),
    ] {
        let e = ModelCard::parse(&bad, Path::new("/x/model.toml")).unwrap_err();
        assert!(matches!(e, DataError::ModelCard { .. }), "{e}");
        let s = e.to_string();
        assert!(s.contains("/x/model.toml") && s.contains(what), "{s}");
    }
}

#[test]
fn find_next_to_absent_is_none() {
    let dir = std::env::temp_dir().join(format!("sieve-card-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(ModelCard::find_next_to(&dir.join("model.onnx"))
        .unwrap()
        .is_none());
    std::fs::write(dir.join("model.toml"), "garbage = [").unwrap();
    assert!(ModelCard::find_next_to(&dir.join("model.onnx")).is_err());
    std::fs::write(dir.join("model.toml"), MOBILENET).unwrap();
    let c = ModelCard::find_next_to(&dir).unwrap().unwrap();
    assert_eq!(c.path, dir.join("model.toml"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn class_name_files() {
    let names = parse_class_names("n01440764 tench, Tinca tinca\nn01443537 goldfish\n\n");
    assert_eq!(names, vec!["tench, Tinca tinca", "goldfish"]);
    assert_eq!(
        parse_class_names("airplane\nautomobile\n"),
        vec!["airplane", "automobile"]
    );
}
