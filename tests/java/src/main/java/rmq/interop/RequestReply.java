package rmq.interop;

import java.nio.charset.StandardCharsets;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.MessageQueueSelector;
import org.apache.rocketmq.client.producer.RequestCallback;
import org.apache.rocketmq.client.utils.MessageUtil;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageConst;
import org.apache.rocketmq.common.message.MessageDecoder;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * The Java side of rmq's request-reply interop test, with the Java client's own request-reply
 * API. Byte fields (body, properties string) are printed in hex.
 *
 * <pre>
 * respond NAMESRV TOPIC GROUP COUNT TIMEOUT_MS   push-consume TOPIC (from the first offset) and
 *                                                answer COUNT requests with "java: " + body
 *                                                (MessageUtil.createReplyMessage, producer.send);
 *                                                messages that are not requests are skipped:
 *     READY                                      once the consumer and producer run
 *     REPLIED correlation_id
 * request NAMESRV TOPIC GROUP COUNT TIMEOUT_MS   COUNT requests with bodies "java-q-<i>", one
 *                                                after the other (DefaultMQProducer.request with
 *                                                a queue selector and a RequestCallback):
 *     REPLY i hex(body) hex(properties)
 * </pre>
 */
public final class RequestReply {
    private static String hex(byte[] b) {
        StringBuilder s = new StringBuilder(b.length * 2);
        for (byte x : b) s.append(String.format("%02x", x & 0xff));
        return s.toString();
    }

    public static void main(String[] args) throws Exception {
        String mode = args.length == 6 ? args[0] : "";
        switch (mode) {
            case "respond" -> respond(args[1], args[2], args[3], Integer.parseInt(args[4]), Long.parseLong(args[5]));
            case "request" -> request(args[1], args[2], args[3], Integer.parseInt(args[4]), Long.parseLong(args[5]));
            default -> {
                System.err.println("usage: respond|request NAMESRV TOPIC GROUP COUNT TIMEOUT_MS");
                System.exit(2);
            }
        }
        System.exit(0);
    }

    private static void respond(String namesrv, String topic, String group, int count, long timeoutMs) throws Exception {
        DefaultMQProducer replier = new DefaultMQProducer(group + "_replier");
        replier.setNamesrvAddr(namesrv);
        replier.start();
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group);
        c.setNamesrvAddr(namesrv);
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.subscribe(topic, "*");
        CountDownLatch left = new CountDownLatch(count);
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                if (m.getProperty(MessageConst.PROPERTY_CORRELATION_ID) == null) continue;
                try {
                    byte[] body = ("java: " + new String(m.getBody(), StandardCharsets.UTF_8)).getBytes(StandardCharsets.UTF_8);
                    Message reply = MessageUtil.createReplyMessage(m, body);
                    replier.send(reply, 3000);
                    synchronized (System.out) {
                        System.out.println("REPLIED\t" + m.getProperty(MessageConst.PROPERTY_CORRELATION_ID));
                        System.out.flush();
                    }
                    left.countDown();
                } catch (Exception e) {
                    e.printStackTrace();
                    return ConsumeConcurrentlyStatus.RECONSUME_LATER;
                }
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        System.out.println("READY");
        System.out.flush();
        boolean done = left.await(timeoutMs, TimeUnit.MILLISECONDS);
        c.shutdown();
        replier.shutdown();
        if (!done) {
            System.err.println("answered " + (count - left.getCount()) + " of " + count + " requests");
            System.exit(1);
        }
    }

    private static void request(String namesrv, String topic, String group, int count, long timeoutMs) throws Exception {
        DefaultMQProducer p = new DefaultMQProducer(group);
        p.setNamesrvAddr(namesrv);
        p.start();
        try {
            for (int i = 0; i < count; i++) {
                Message m = new Message(topic, ("java-q-" + i).getBytes(StandardCharsets.UTF_8));
                // The callback form with a queue selector: in clients 5.3.1 and later the blocking
                // request(msg, timeout) gives up as soon as the request is sent
                // (apache/rocketmq#9292), and request(msg, callback, timeout) calls the callback
                // with no reply at that moment too.
                CompletableFuture<Message> replied = new CompletableFuture<>();
                MessageQueueSelector byIndex = (mqs, msg, arg) -> mqs.get((Integer) arg % mqs.size());
                p.request(m, byIndex, i, new RequestCallback() {
                    @Override
                    public void onSuccess(Message reply) {
                        replied.complete(reply);
                    }

                    @Override
                    public void onException(Throwable e) {
                        replied.completeExceptionally(e);
                    }
                }, timeoutMs);
                Message reply = replied.get(timeoutMs + 5000, TimeUnit.MILLISECONDS);
                String props = MessageDecoder.messageProperties2String(new TreeMap<>(reply.getProperties()));
                System.out.println(String.join("\t", "REPLY", Integer.toString(i), hex(reply.getBody()),
                    hex(props.getBytes(StandardCharsets.UTF_8))));
            }
            System.out.flush();
        } finally {
            p.shutdown();
        }
    }
}
