//! Public keys and direct messages, with real P-256 ECDH, HKDF-SHA-256 and AES-256-GCM on
//! the client side (the scheme of docs/e2ee.md); the server only stores opaque fields.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hkdf::Hkdf;
use p256::{PublicKey, SecretKey};
use rand_core::{OsRng, RngCore};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use sqlx::Connection;

use crate::helpers::{expect_error, json_of, spawn_app, TestApp};

const HKDF_INFO: &[u8] = b"webcall/dm/v1";

/// The AES-256 key two users share: ECDH, then HKDF-SHA-256 (32 zero bytes of salt).
fn shared_key(mine: &SecretKey, theirs: &PublicKey) -> [u8; 32] {
    let shared = p256::ecdh::diffie_hellman(mine.to_nonzero_scalar(), theirs.as_affine());
    let hk = Hkdf::<Sha256>::new(Some(&[0u8; 32]), shared.raw_secret_bytes());
    let mut key = [0u8; 32];
    hk.expand(HKDF_INFO, &mut key)
        .expect("32 bytes is a valid length");
    key
}

/// What the ciphertext is bound to, so the server can't re-attribute it.
fn aad(sender: &str, recipient: &str, sender_key: &str, recipient_key: &str) -> String {
    format!("{sender}|{recipient}|{sender_key}|{recipient_key}")
}

struct Sealed {
    ciphertext: String,
    iv: String,
}

fn seal(key: &[u8; 32], aad: &str, plaintext: &str) -> Sealed {
    let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
    let mut iv = [0u8; 12];
    OsRng.fill_bytes(&mut iv);
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: plaintext.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .expect("encrypts");
    Sealed {
        ciphertext: B64.encode(ciphertext),
        iv: B64.encode(iv),
    }
}

fn open(key: &[u8; 32], aad: &str, message: &Value) -> String {
    let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
    let iv = B64
        .decode(message["iv"].as_str().expect("iv"))
        .expect("base64");
    let ct = B64
        .decode(message["ciphertext"].as_str().expect("ciphertext"))
        .expect("base64");
    let plain = cipher
        .decrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: &ct,
                aad: aad.as_bytes(),
            },
        )
        .expect("decrypts with the shared key");
    String::from_utf8(plain).expect("utf-8")
}

pub async fn put_key(app: &TestApp, token: &str, key_id: &str, jwk: &Value) -> (StatusCode, Value) {
    json_of(
        app.request(Method::PUT, "/api/v1/keys", Some(token))
            .json(&json!({ "key_id": key_id, "jwk": jwk }))
            .send()
            .await
            .expect("send"),
    )
    .await
}

/// A fresh key pair and its public JWK as WebCrypto exports it.
pub fn keypair() -> (SecretKey, Value) {
    let secret = SecretKey::random(&mut OsRng);
    let mut jwk: Value = serde_json::from_str(&secret.public_key().to_jwk_string()).expect("jwk");
    jwk["ext"] = json!(true);
    jwk["key_ops"] = json!([]);
    (secret, jwk)
}

async fn current_key(app: &TestApp, token: &str, username: &str) -> (String, PublicKey) {
    let (status, keys) = json_of(
        app.get(&format!("/api/v1/keys/{username}"), Some(token))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let current = &keys["current"];
    let public = PublicKey::from_jwk_str(&current["jwk"].to_string()).expect("a P-256 public key");
    (
        current["key_id"].as_str().expect("key id").to_owned(),
        public,
    )
}

/// The DM rows as the database holds them: (body, ciphertext, iv).
async fn stored_dms(app: &TestApp) -> Vec<(Option<String>, Option<String>, Option<String>)> {
    sqlx::any::install_default_drivers();
    let url = app
        .env
        .get("DATABASE_URL")
        .cloned()
        .unwrap_or_else(|| api::db::Store::sqlite_url_in(&app.data_dir));
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("database");
    sqlx::query_as("SELECT body, ciphertext, iv FROM direct_messages ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .expect("rows")
}

#[tokio::test]
async fn encrypted_dms_are_stored_untouched_and_only_the_two_users_can_read_them() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let (alice_secret, alice_jwk) = keypair();
    let (bob_secret, bob_jwk) = keypair();
    assert_eq!(
        put_key(&app, &alice, "a1", &alice_jwk).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        put_key(&app, &bob, "b1", &bob_jwk).await.0,
        StatusCode::CREATED
    );
    let mut bob_ws = app.user_ws(&bob).await;
    let mut alice_ws = app.user_ws(&alice).await;

    // alice encrypts to bob's current key.
    let plaintext = "the door code is 4711";
    let (bob_key_id, bob_public) = current_key(&app, &alice, "bob").await;
    assert_eq!(bob_key_id, "b1");
    let bound = aad("alice", "bob", "a1", &bob_key_id);
    let sealed = seal(&shared_key(&alice_secret, &bob_public), &bound, plaintext);
    let res = app
        .post(
            "/api/v1/dm/bob",
            Some(&alice),
            json!({"ciphertext": sealed.ciphertext, "iv": sealed.iv, "sender_key_id": "a1", "recipient_key_id": bob_key_id}),
        )
        .await;
    let (status, sent) = json_of(res).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(
        (sent["ciphertext"].as_str(), sent["iv"].as_str()),
        (Some(sealed.ciphertext.as_str()), Some(sealed.iv.as_str()))
    );
    assert!(sent.get("text").is_none());

    // bob gets it live, both of alice's sockets get the copy, and bob decrypts with the
    // sender key the message names.
    let pushed = bob_ws.recv_type("dm").await["message"].clone();
    assert_eq!(alice_ws.recv_type("dm").await["message"], pushed);
    let (_, alice_keys) = json_of(app.get("/api/v1/keys/alice", Some(&bob)).await).await;
    let sender_jwk = alice_keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["key_id"] == pushed["sender_key_id"])
        .expect("sender key published")["jwk"]
        .to_string();
    let alice_public = PublicKey::from_jwk_str(&sender_jwk).expect("key");
    let bob_key = shared_key(&bob_secret, &alice_public);
    assert_eq!(open(&bob_key, &bound, &pushed), plaintext);

    // bob rotates; the old key id stays listed so the old message stays readable.
    let (bob_secret2, bob_jwk2) = keypair();
    assert_eq!(
        put_key(&app, &bob, "b2", &bob_jwk2).await.0,
        StatusCode::CREATED
    );
    let (_, bob_keys) = json_of(app.get("/api/v1/keys/bob", Some(&alice)).await).await;
    assert_eq!(bob_keys["current"]["key_id"], "b2");
    let listed: Vec<&str> = bob_keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["key_id"].as_str().expect("id"))
        .collect();
    assert_eq!(listed, ["b2", "b1"]);
    let (_, bob_public2) = current_key(&app, &alice, "bob").await;
    let bound2 = aad("alice", "bob", "a1", "b2");
    let sealed2 = seal(
        &shared_key(&alice_secret, &bob_public2),
        &bound2,
        "second secret",
    );
    app.post(
        "/api/v1/dm/bob",
        Some(&alice),
        json!({"ciphertext": sealed2.ciphertext, "iv": sealed2.iv, "sender_key_id": "a1", "recipient_key_id": "b2"}),
    )
    .await;
    let (_, page) = json_of(app.get("/api/v1/dm/alice", Some(&bob)).await).await;
    assert_eq!(page[0]["recipient_key_id"], "b2");
    assert_eq!(
        open(&shared_key(&bob_secret2, &alice_public), &bound2, &page[0]),
        "second secret"
    );
    assert_eq!(open(&bob_key, &bound, &page[1]), plaintext);

    // The database holds exactly the opaque fields and no plaintext.
    let rows = stored_dms(&app).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0],
        (
            None,
            Some(sealed.ciphertext.clone()),
            Some(sealed.iv.clone())
        )
    );
    for (body, ciphertext, _) in &rows {
        assert!(body.is_none());
        assert!(!ciphertext.as_deref().unwrap_or("").contains("secret"));
    }
}

#[tokio::test]
async fn keys_must_be_p256_public_jwks_and_key_ids_are_never_reused_for_another_key() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let (_, jwk) = keypair();
    let (_, other) = keypair();
    assert_eq!(
        put_key(&app, &alice, "k1", &jwk).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        put_key(&app, &alice, "k1", &jwk).await.0,
        StatusCode::OK,
        "same key again is a no-op"
    );
    let (status, body) = put_key(&app, &alice, "k1", &other).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("key_id_taken"))
    );

    let secret = SecretKey::random(&mut OsRng);
    let private: Value = serde_json::from_str(&secret.to_jwk_string()).expect("jwk");
    let mut off_curve = jwk.clone();
    off_curve["x"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let mut wrong_curve = jwk.clone();
    wrong_curve["crv"] = json!("P-384");
    for (bad, why) in [
        (private, "private key"),
        (off_curve, "off the curve"),
        (wrong_curve, "P-384"),
        (json!("abc"), "not an object"),
    ] {
        let (status, body) = put_key(&app, &alice, "k2", &bad).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("jwk")),
            "{why}: {body}"
        );
    }
    let (status, body) = put_key(&app, &alice, "no spaces", &jwk).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("key_id"))
    );
    expect_error(
        app.get("/api/v1/keys/nobody", Some(&alice)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let (_, none) = json_of(app.get("/api/v1/keys/alice", Some(&alice)).await).await;
    assert_eq!(none["current"]["key_id"], "k1");
    let bob = app.register("bob").await;
    let (_, empty) = json_of(app.get("/api/v1/keys/bob", Some(&alice)).await).await;
    assert_eq!(
        (empty["current"].clone(), empty["keys"].clone()),
        (Value::Null, json!([]))
    );
    expect_error(
        app.get("/api/v1/keys/bob", None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    drop(bob);
}

#[tokio::test]
async fn bad_dms_are_answered_with_clear_errors() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let (_, jwk) = keypair();
    put_key(&app, &alice, "a1", &jwk).await;

    let err = expect_error(
        app.post("/api/v1/dm/alice", Some(&alice), json!({"text": "me"}))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(err["code"], "dm_to_self");
    expect_error(
        app.post("/api/v1/dm/nobody", Some(&alice), json!({"text": "hi"}))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let cases = [
        (json!({"text": "x".repeat(4001)}), "text"),
        (json!({"text": "  "}), "text"),
        (json!({}), "text"),
        (json!({"text": "hi", "ciphertext": "AAAA"}), "text"),
        (
            json!({"ciphertext": "AAAA", "sender_key_id": "a1", "recipient_key_id": "b1"}),
            "iv",
        ),
        (
            json!({"ciphertext": "AAAA", "iv": "AAAA", "sender_key_id": "a1", "recipient_key_id": "b1"}),
            "recipient_key_id",
        ),
        (
            json!({"ciphertext": "AAAA", "iv": "AAAA", "sender_key_id": "zz", "recipient_key_id": "b1"}),
            "sender_key_id",
        ),
        (
            json!({"ciphertext": "A".repeat(30_000), "iv": "AAAA", "sender_key_id": "a1", "recipient_key_id": "b1"}),
            "ciphertext",
        ),
        (
            json!({"ciphertext": "<html>", "iv": "AAAA", "sender_key_id": "a1", "recipient_key_id": "b1"}),
            "ciphertext",
        ),
    ];
    for (body, field) in cases {
        let err = expect_error(
            app.post("/api/v1/dm/bob", Some(&alice), body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(err["field"], field, "{body}");
    }
    expect_error(
        app.get("/api/v1/dm/alice", Some(&alice)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    expect_error(app.get("/api/v1/dm", None).await, StatusCode::UNAUTHORIZED).await;
    drop(bob);
}

#[tokio::test]
async fn conversations_show_the_last_message_and_unread_count_until_marked_read() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    for text in ["one", "two", "three"] {
        app.post("/api/v1/dm/alice", Some(&bob), json!({ "text": text }))
            .await;
    }
    app.post(
        "/api/v1/dm/carol",
        Some(&alice),
        json!({"text": "hi carol"}),
    )
    .await;
    let (_, list) = json_of(app.get("/api/v1/dm", Some(&alice)).await).await;
    assert_eq!(list[0]["username"], "carol", "most recent first");
    assert_eq!(
        (
            list[0]["unread"].as_i64(),
            list[0]["last_message"]["text"].as_str()
        ),
        (Some(0), Some("hi carol"))
    );
    assert_eq!(
        (list[1]["username"].as_str(), list[1]["unread"].as_i64()),
        (Some("bob"), Some(3))
    );
    assert_eq!(list[1]["last_message"]["text"], "three");
    assert_eq!(list[1]["online"], false);

    let (_, page) = json_of(app.get("/api/v1/dm/bob?limit=2", Some(&alice)).await).await;
    assert_eq!(page.as_array().map(Vec::len), Some(2));
    let second_id = page[1]["id"].as_i64().expect("id");
    let mut bob_ws = app.user_ws(&bob).await;
    let (_, marked) = json_of(
        app.post(
            "/api/v1/dm/bob/read",
            Some(&alice),
            json!({"up_to": second_id}),
        )
        .await,
    )
    .await;
    assert_eq!(marked["marked"], 2);
    let receipt = bob_ws.recv_type("dm_read").await;
    assert_eq!(
        (receipt["reader"].as_str(), receipt["up_to"].as_i64()),
        (Some("alice"), Some(second_id))
    );
    let (_, list) = json_of(app.get("/api/v1/dm", Some(&alice)).await).await;
    assert_eq!(list[1]["unread"], 1);
    assert_eq!(list[1]["online"], true);
    let (_, marked) = json_of(
        app.post("/api/v1/dm/bob/read", Some(&alice), json!({}))
            .await,
    )
    .await;
    assert_eq!(marked["marked"], 1);
    let (_, page) = json_of(app.get("/api/v1/dm/alice", Some(&bob)).await).await;
    assert!(page[0]["read_at"].is_string());
    // carol sees only her conversation.
    let (_, list) = json_of(app.get("/api/v1/dm", Some(&carol)).await).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}
