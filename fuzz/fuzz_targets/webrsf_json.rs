//! The WebRSF JSON request bodies (src/webrsf/body.rs): the bytes of a POST/PUT body through
//! the object check and every endpoint's reader, as the HTTP handlers call them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcslab::webrsf::body;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = body::json_object(data) else {
        return;
    };
    assert!(v.is_object());
    let _ = body::login(&v);
    let _ = body::start_chat(&v);
    let _ = body::instance_update(&v);
    let _ = body::post_message(&v);
    let _ = body::message_status(&v);
    let _ = body::composing(&v);
});
