/* What the generated NULL calls (scripts/gen-misuse-null.py) use from misuse.c: a live,
 * valid value for every parameter type of the C ABI, and the checks of each call's outcome.
 * Handle fixtures are made on first use against the broker at RMQ_NAMESRV and made again when
 * a call that was allowed to succeed ended them (an acknowledged batch, for instance). */
#ifndef RMQ_TESTS_C_MISUSE_FIXTURES_H
#define RMQ_TESTS_C_MISUSE_FIXTURES_H

#include "rmq.h"

const char *fx_namesrv(void);
const char *fx_topic(void);
const char *fx_offset_msg_id(void);
const char *fx_reply_properties(void);
int64_t fx_now_ms(void);
void *fx_user_data(void);

rmq_config_t *fx_config(void);
rmq_message_t *fx_message(void);
rmq_message_t *fx_stored_message(void);
const rmq_message_t *const *fx_message_array(void);
rmq_producer_t *fx_producer(void);
rmq_send_result_t *fx_send_result(void);
rmq_push_consumer_t *fx_push_consumer(void);
rmq_lite_pull_consumer_t *fx_lite_pull_consumer(void);
rmq_message_queue_list_t *fx_message_queue_list(void);
rmq_received_batch_t *fx_received_batch(void);
const rmq_received_message_t *fx_received_message(void);
rmq_transaction_producer_t *fx_transaction_producer(void);
rmq_completion_queue_t *fx_completion_queue(void);
const rmq_message_queue_t *fx_queue(void);
const rmq_queue_selector_t *fx_selector(void);

void fx_send_callback(const rmq_send_callback_params_t *params, void *user_data);
rmq_consume_status_t fx_listener(const rmq_received_message_t *const *messages, size_t count,
                                 rmq_consume_context_t *context, void *user_data);
rmq_consume_orderly_status_t fx_orderly_listener(const rmq_received_message_t *const *messages,
                                                 size_t count,
                                                 rmq_consume_orderly_context_t *context,
                                                 void *user_data);
void fx_log_callback(const rmq_log_record_t *record, void *user_data);
void fx_request_callback(const rmq_request_callback_params_t *params, void *user_data);
rmq_transaction_state_t fx_checker(const rmq_received_message_t *message, void *user_data);
rmq_transaction_state_t fx_execute(const rmq_message_t *message, const rmq_send_result_t *result,
                                   void *arg);

/* Frees what an out-parameter received when a call succeeded (NULL: nothing). */
void fx_release_message(rmq_message_t *m);
void fx_release_send_result(rmq_send_result_t *r);
void fx_release_producer(rmq_producer_t *p);
void fx_release_push_consumer(rmq_push_consumer_t *c);
void fx_release_lite_pull_consumer(rmq_lite_pull_consumer_t *c);
void fx_release_message_queue_list(rmq_message_queue_list_t *l);
void fx_release_received_batch(rmq_received_batch_t *b);
void fx_release_transaction_producer(rmq_transaction_producer_t *p);
void fx_release_completion_queue(rmq_completion_queue_t *q);

/* Announces the next call (stderr names it if the process dies in it), then checks it. */
void fx_before(const char *fn, const char *param);
void fx_expect_status(const char *fn, const char *param, rmq_status_t got, rmq_status_t want);
void fx_expect_void(const char *fn, const char *param);
void fx_expect_null(const char *fn, const char *param, const void *got);
void fx_expect_nonnull(const char *fn, const char *param, const void *got);

extern const int null_call_count;
extern const int null_function_count;
void null_calls(void);

#endif
