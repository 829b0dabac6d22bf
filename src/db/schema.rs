// @generated automatically by Diesel CLI.

diesel::table! {
    event_hours (hour) {
        hour -> Timestamptz,
        logins -> Int8,
        failed_logins -> Int8,
        refreshes -> Int8,
        reuse_detected -> Int8,
        revocations -> Int8,
    }
}

diesel::table! {
    events (id) {
        id -> Int8,
        at -> Timestamptz,
        kind -> Text,
        user_id -> Nullable<Uuid>,
        session_id -> Nullable<Uuid>,
        actor_id -> Nullable<Uuid>,
        ip -> Nullable<Text>,
        detail -> Jsonb,
    }
}

diesel::table! {
    login_throttle (username_key) {
        username_key -> Text,
        failures -> Int4,
        last_failure -> Timestamptz,
        locked_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    revocations (id) {
        id -> Int8,
        tx -> Int8,
        at -> Timestamptz,
        reason -> Text,
        session_id -> Nullable<Uuid>,
        user_id -> Nullable<Uuid>,
        auth_before -> Nullable<Timestamptz>,
        kid -> Nullable<Text>,
    }
}

diesel::table! {
    services (id) {
        id -> Uuid,
        name -> Text,
        client_id -> Text,
        secret_hash -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        current_jti -> Uuid,
        previous_jti -> Nullable<Uuid>,
        rotated_at -> Timestamptz,
        created_at -> Timestamptz,
        last_used_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        name -> Nullable<Text>,
        last_ip -> Nullable<Text>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        private_key -> Bytea,
        public_key -> Nullable<Bytea>,
        created_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
        signs_from -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Text,
        name -> Nullable<Text>,
        password_hash -> Text,
        admin -> Bool,
        banned -> Bool,
        banned_until -> Nullable<Timestamptz>,
        ban_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        last_login_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    event_hours,
    events,
    login_throttle,
    revocations,
    services,
    sessions,
    signing_keys,
    users,
);
