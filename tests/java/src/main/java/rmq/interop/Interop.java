package rmq.interop;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageDecoder;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;

/**
 * The Java side of rmq's interop test. Prints one tab-separated line per message; byte fields
 * (body, properties string) in hex so nothing is lost or reinterpreted.
 *
 * <pre>
 * consume NAMESRV TOPIC COUNT TIMEOUT_MS   pull every queue of TOPIC from offset 0 until COUNT
 *                                          messages arrived:
 *     RECV recv_ms msg_id topic flag sys_flag born_ms store_ms hex(body) hex(properties)
 * consume-ordered NAMESRV TOPIC COUNT TIMEOUT_MS
 *                                          the same, queue by queue: every message of a queue,
 *                                          in queue order, before the next queue's (the order an
 *                                          orderly consumer sees within a queue):
 *     QRECV broker queue_id queue_offset msg_id topic flag hex(body) hex(properties)
 * produce NAMESRV TOPIC GROUP KEY_PREFIX   send one compressed message per codec (ZLIB, LZ4,
 *                                          ZSTD) and a batch of three:
 *     SENT codec offset_msg_id msg_id topic flag hex(body) hex(properties)
 * </pre>
 */
public final class Interop {
    private static String hex(byte[] b) {
        StringBuilder s = new StringBuilder(b.length * 2);
        for (byte x : b) s.append(String.format("%02x", x & 0xff));
        return s.toString();
    }

    private static String hexProps(Map<String, String> props) {
        return hex(MessageDecoder.messageProperties2String(new TreeMap<>(props)).getBytes(StandardCharsets.UTF_8));
    }

    public static void main(String[] args) throws Exception {
        switch (args.length > 0 ? args[0] : "") {
            case "consume" -> consume(args[1], args[2], Integer.parseInt(args[3]), Long.parseLong(args[4]));
            case "consume-ordered" -> consumeOrdered(args[1], args[2], Integer.parseInt(args[3]), Long.parseLong(args[4]));
            case "produce" -> produce(args[1], args[2], args[3], args[4]);
            default -> {
                System.err.println("usage: consume|consume-ordered NAMESRV TOPIC COUNT TIMEOUT_MS | produce NAMESRV TOPIC GROUP KEY_PREFIX");
                System.exit(2);
            }
        }
        System.exit(0);
    }

    @SuppressWarnings("deprecation")
    private static void consume(String namesrv, String topic, int count, long timeoutMs) throws Exception {
        DefaultMQPullConsumer c = new DefaultMQPullConsumer("RmqInteropConsumer_" + System.nanoTime());
        c.setNamesrvAddr(namesrv);
        c.start();
        try {
            Set<MessageQueue> queues = c.fetchSubscribeMessageQueues(topic);
            Map<MessageQueue, Long> next = new HashMap<>();
            for (MessageQueue q : queues) next.put(q, 0L);
            Set<String> seen = new HashSet<>();
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (seen.size() < count && System.currentTimeMillis() < deadline) {
                boolean any = false;
                for (MessageQueue q : queues) {
                    PullResult r = c.pull(q, "*", next.get(q), 32, 3000);
                    next.put(q, r.getNextBeginOffset());
                    if (r.getPullStatus() != PullStatus.FOUND) continue;
                    long now = System.currentTimeMillis();
                    for (MessageExt m : r.getMsgFoundList()) {
                        any = true;
                        if (!seen.add(m.getMsgId())) continue;
                        System.out.println(String.join("\t", "RECV", Long.toString(now), m.getMsgId(), m.getTopic(),
                            Integer.toString(m.getFlag()), Integer.toString(m.getSysFlag()),
                            Long.toString(m.getBornTimestamp()), Long.toString(m.getStoreTimestamp()),
                            hex(m.getBody()), hexProps(m.getProperties())));
                    }
                }
                if (!any) Thread.sleep(200);
            }
            System.out.flush();
            if (seen.size() < count) {
                System.err.println("received " + seen.size() + " of " + count + " messages");
                System.exit(1);
            }
        } finally {
            c.shutdown();
        }
    }

    @SuppressWarnings("deprecation")
    private static void consumeOrdered(String namesrv, String topic, int count, long timeoutMs) throws Exception {
        DefaultMQPullConsumer c = new DefaultMQPullConsumer("RmqInteropOrdered_" + System.nanoTime());
        c.setNamesrvAddr(namesrv);
        c.start();
        try {
            List<MessageQueue> queues = new ArrayList<>(c.fetchSubscribeMessageQueues(topic));
            queues.sort(MessageQueue::compareTo);
            // Each queue's maximum offset once all were sent: read each queue up to it, in order.
            Map<MessageQueue, List<MessageExt>> read = new HashMap<>();
            long deadline = System.currentTimeMillis() + timeoutMs;
            int total;
            do {
                total = 0;
                for (MessageQueue q : queues) {
                    List<MessageExt> got = read.computeIfAbsent(q, k -> new ArrayList<>());
                    long offset = got.isEmpty() ? 0 : got.get(got.size() - 1).getQueueOffset() + 1;
                    PullResult r = c.pull(q, "*", offset, 32, 3000);
                    if (r.getPullStatus() == PullStatus.FOUND) got.addAll(r.getMsgFoundList());
                    total += got.size();
                }
                if (total < count) Thread.sleep(200);
            } while (total < count && System.currentTimeMillis() < deadline);
            for (MessageQueue q : queues) {
                for (MessageExt m : read.get(q)) {
                    System.out.println(String.join("\t", "QRECV", q.getBrokerName(), Integer.toString(q.getQueueId()),
                        Long.toString(m.getQueueOffset()), m.getMsgId(), m.getTopic(), Integer.toString(m.getFlag()),
                        hex(m.getBody()), hexProps(m.getProperties())));
                }
            }
            System.out.flush();
            if (total < count) {
                System.err.println("received " + total + " of " + count + " messages");
                System.exit(1);
            }
        } finally {
            c.shutdown();
        }
    }

    private static byte[] textBody(int n, String salt) {
        String words = "java interop " + salt + " lorem ipsum dolor sit amet ";
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = (byte) words.charAt((i * 7 + i / 13) % words.length());
        return b;
    }

    private static void print(String what, Message m, String offsetId, String msgId) {
        System.out.println(String.join("\t", "SENT", what, offsetId, msgId, m.getTopic(),
            Integer.toString(m.getFlag()), hex(m.getBody()), hexProps(m.getProperties())));
    }

    private static void produce(String namesrv, String topic, String group, String keyPrefix) throws Exception {
        // The codec is read when a producer is made: one producer per codec.
        for (String codec : new String[] {"ZLIB", "LZ4", "ZSTD"}) {
            System.setProperty("rocketmq.message.compressType", codec);
            DefaultMQProducer p = new DefaultMQProducer(group + "_" + codec);
            p.setNamesrvAddr(namesrv);
            p.start();
            try {
                Message m = new Message(topic, "TagJ", keyPrefix + codec, textBody(16 * 1024, codec));
                m.setFlag(7);
                m.putUserProperty("lang", "java");
                SendResult r = p.send(m);
                print(codec, m, r.getOffsetMsgId(), r.getMsgId());
                if (codec.equals("ZLIB")) {
                    List<Message> batch = new ArrayList<>();
                    for (int i = 0; i < 3; i++) {
                        Message b = new Message(topic, "TagB", keyPrefix + "batch" + i, textBody(100 + i, "b" + i));
                        b.setFlag(i);
                        b.putUserProperty("index", Integer.toString(i));
                        batch.add(b);
                    }
                    SendResult br = p.send(batch);
                    String[] offsets = br.getOffsetMsgId().split(",");
                    String[] ids = br.getMsgId().split(",");
                    for (int i = 0; i < 3; i++) print("BATCH", batch.get(i), offsets[i], ids[i]);
                }
            } finally {
                p.shutdown();
            }
        }
        System.out.flush();
    }
}
