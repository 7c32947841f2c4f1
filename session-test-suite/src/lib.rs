//! The conformance suite for [`SessionStore`](session_core::SessionStore) backends.
//!
//! Every case is a plain `pub async fn(Arc<dyn SessionStore>)` in [`cases`] that
//! panics with a message saying which contract sentence broke. A backend crate
//! runs them all with one line in a test file:
//!
//! ```ignore
//! session_test_suite::conformance_tests!(|| async {
//!     session_test_suite::Provision::ready(session_core::MemoryStore::new())
//! });
//! ```
//!
//! That expands to a module `conformance` with one `#[test]` per case, so
//! `cargo test conformance::delete_returns_true_once_then_false` runs one case.
//! The factory runs once per test, so every case gets its own store (or its own
//! prefix, schema or folder) and cases run in parallel. A factory returns
//! [`Provision::Skip`] when its server is not available (see
//! [`server_url`]): the test is then reported as skipped on stderr, loudly, or
//! fails when the `CI` variable is set.
//!
//! [`CASES`] lists every case by name for runners that check a live deployment
//! (`sessionctl check`), through [`run_case`].

pub mod cases;
#[cfg(feature = "testcontainers")]
mod docker;
mod env;
pub mod fault;
mod harness;
pub mod pgbouncer;
mod registry;

pub use env::{
    ci_mode, free_loopback_port, server, server_url, skip, take_skipped, url_or_skip, Server,
    ServerKind,
};
pub use harness::{run_case, run_test, CaseFn, CaseFuture, CaseOutcome, Provision, TestStore};
pub use registry::{Case, CASES};

/// Expands every conformance case into its own test, inside `mod conformance`.
///
/// The argument is an expression for a factory: something callable with no
/// arguments that returns a future of a [`Provision`] (or of anything that
/// converts into one, such as a store). It is called once per test.
///
/// ```ignore
/// session_test_suite::conformance_tests!(my_backend_tests::fresh_store);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        #[cfg(test)]
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__with_cases!(__conformance_test_fns($factory));
        }
    };
}

/// Calls `$crate::$callback!{ ($args) case_a case_b … }` with every case name.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ($callback:ident ($($args:tt)*)) => {
        $crate::$callback! { ($($args)*)
            // crud
            create_then_load_returns_every_field_exactly
            create_stores_the_version_as_given
            create_round_trips_timestamps_to_the_millisecond
            create_over_a_live_record_is_already_exists_and_changes_nothing
            create_twice_with_the_same_record_is_already_exists
            create_replaces_an_expired_record_under_the_same_key
            create_with_a_past_deadline_is_invisible
            create_without_user_is_in_no_index
            load_of_an_unknown_key_is_none
            create_after_delete_succeeds
            // update
            update_with_next_version_replaces_every_field
            update_with_stale_version_is_conflict_and_changes_nothing
            update_with_a_future_expected_version_is_conflict_and_changes_nothing
            update_with_wrong_next_version_is_invalid_input_and_changes_nothing
            update_of_an_unknown_key_is_not_found_and_creates_nothing
            update_of_an_expired_record_is_not_found_and_does_not_revive_it
            update_of_a_deleted_record_is_not_found_and_does_not_revive_it
            update_changing_user_moves_the_index_entry
            update_to_no_user_and_back_moves_the_index_entry
            update_with_a_past_deadline_makes_the_record_invisible
            successive_updates_each_need_the_previous_version
            // touch
            touch_moves_the_deadline_later_and_changes_nothing_else
            touch_never_moves_the_deadline_earlier_and_changes_nothing
            touch_into_the_past_changes_nothing
            touch_of_an_unknown_key_is_not_found_and_creates_nothing
            touch_of_an_expired_or_deleted_record_is_not_found
            touch_does_not_bump_the_version
            // rotate
            rotate_moves_the_record_to_the_new_key_and_keeps_its_id
            rotate_onto_a_live_key_is_already_exists_and_changes_nothing
            rotate_onto_an_expired_key_replaces_it
            rotate_to_the_same_key_is_invalid_input_and_changes_nothing
            rotate_with_a_different_id_is_invalid_input_and_changes_nothing
            rotate_with_wrong_next_version_is_invalid_input_and_changes_nothing
            rotate_with_stale_version_is_conflict_and_changes_nothing
            rotate_of_a_missing_expired_or_deleted_key_is_not_found
            rotate_moves_the_user_index_entry
            rotated_away_key_is_dead_for_every_method
            // delete
            delete_returns_true_once_then_false
            delete_removes_the_index_entry
            delete_of_an_expired_record_returns_false
            delete_of_an_unknown_key_returns_false
            delete_leaves_other_records_alone
            delete_id_removes_exactly_that_session_and_its_index_entry
            delete_id_of_another_users_session_returns_false_and_changes_nothing
            delete_id_of_an_unknown_expired_or_deleted_session_returns_false
            delete_id_finds_a_rotated_session_and_late_writes_do_not_revive_it
            // users
            list_user_of_an_unknown_user_is_empty
            list_user_returns_exactly_the_users_live_records
            list_user_matches_user_names_bytewise
            user_names_with_special_characters_round_trip_and_list_exactly
            pattern_characters_in_user_names_match_literally
            empty_user_name_is_invalid_input_and_changes_nothing
            user_name_with_nul_is_invalid_input_and_changes_nothing
            user_name_of_1024_bytes_round_trips_and_longer_is_invalid_input
            user_names_in_nfc_and_nfd_are_distinct_users
            delete_user_deletes_every_live_session_and_returns_the_count
            delete_user_with_keep_spares_only_that_session
            delete_user_with_keep_of_another_user_deletes_all
            delete_user_counts_only_live_records
            delete_user_of_an_unknown_user_returns_zero
            revoked_session_is_not_brought_back_by_update_touch_or_rotate
            ten_thousand_sessions_for_one_user_list_and_delete_user
            // purge
            purge_removes_exactly_the_expired_records
            purge_with_nothing_expired_returns_zero_and_removes_nothing
            purge_follows_deadlines_changed_by_touch_and_update
            purged_keys_can_be_created_again_and_survive_the_next_purge
            // expiry
            short_lived_record_disappears_after_its_deadline
            writes_after_a_real_expiry_are_not_found_and_create_reuses_the_key
            touch_extends_a_real_deadline_and_never_shortens_it
            update_moves_a_real_deadline_both_ways
            rotate_carries_a_real_deadline_both_ways
            purge_after_a_real_expiry_keeps_every_live_record
            delete_user_after_a_real_expiry_counts_only_live_records
            // payload
            empty_payload_round_trips
            one_mebibyte_of_random_bytes_round_trips
            every_byte_value_round_trips
            shrinking_update_leaves_no_stale_bytes
            // concurrency
            concurrent_updates_never_lose_a_write
            concurrent_creates_of_the_same_key_have_exactly_one_winner
            deleted_session_is_not_brought_back_by_concurrent_updates
            revoked_sessions_are_not_brought_back_by_concurrent_updates_and_touches
            revoked_sessions_are_not_brought_back_by_concurrent_rotations
            delete_id_ends_a_session_that_keeps_rotating
            concurrent_logins_under_a_per_user_cap_keep_exactly_the_newest
            concurrent_rotations_of_one_key_have_exactly_one_winner
            readers_never_see_both_or_neither_key_during_rotation
            list_user_during_rotations_never_lists_a_session_twice
            update_and_rotate_racing_on_one_version_have_exactly_one_winner
            delete_and_rotate_racing_never_both_succeed
            concurrent_touches_never_undo_an_update
            // client-side sessions' revocation list
            client_side_cookies_replayed_after_logout_login_or_rotate_are_refused
            client_side_log_out_everywhere_refuses_every_other_cookie_of_the_user
            client_side_concurrent_logouts_of_one_user_all_stay_revoked
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fns {
    (($factory:expr) $($case:ident)*) => {
        $(
            #[test]
            fn $case() {
                $crate::run_test(
                    stringify!($case),
                    ::std::any::type_name_of_val(&$crate::cases::$case),
                    $factory,
                    |store| ::std::boxed::Box::pin($crate::cases::$case(store)),
                );
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __registry {
    (() $($case:ident)*) => {
        /// Every case of the suite, by name, in a stable order.
        pub static CASES: &[$crate::Case] = &[
            $(
                $crate::Case {
                    name: stringify!($case),
                    run: |store| ::std::boxed::Box::pin($crate::cases::$case(store)),
                },
            )*
        ];
    };
}
