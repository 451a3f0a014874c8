// Readiness probe for the local livewatch Kafka broker (used by start.sh).
//
// Polls the broker with the Kafka Admin client until it answers a metadata
// request (DescribeCluster) with at least one live broker and a known active
// controller, then, unless --no-warm is given, asks the group coordinator for a
// throw-away group's offsets. The first coordinator lookup makes the broker
// create __consumer_offsets; doing it here means the first consumer group in a
// test run doesn't pay for that.
//
// Usage: java -cp '<classes>:<libs>/*' ReadyCheck <bootstrap> <timeout-seconds> [--no-warm]
//            [--command-config <client.properties>]
// --command-config adds client properties (security.protocol, sasl.*, ssl.*) for a
// broker with a SASL_SSL listener (start.sh KAFKA_SECURITY=SASL_SSL).
// Exit status: 0 ready, 1 not ready before the timeout, 2 usage error.

import java.io.FileInputStream;
import java.io.InputStream;
import java.util.Collection;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.common.Node;

public final class ReadyCheck {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: ReadyCheck <bootstrap> <timeout-seconds> [--no-warm] [--command-config FILE]");
            System.exit(2);
        }
        String bootstrap = args[0];
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[1]));
        boolean warm = true;
        Properties props = new Properties();
        for (int i = 2; i < args.length; i++) {
            if ("--no-warm".equals(args[i])) {
                warm = false;
            } else if ("--command-config".equals(args[i]) && i + 1 < args.length) {
                try (InputStream in = new FileInputStream(args[++i])) {
                    props.load(in);
                }
            } else {
                System.err.println("ReadyCheck: unknown argument " + args[i]);
                System.exit(2);
            }
        }

        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "livewatch-readycheck");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, "100");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MS_CONFIG, "100");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");

        String lastError = "no attempt made";
        try (Admin admin = Admin.create(props)) {
            boolean clusterOk = false;
            while (System.nanoTime() < deadline) {
                try {
                    if (!clusterOk) {
                        DescribeClusterResult cluster = admin.describeCluster();
                        Collection<Node> nodes = cluster.nodes().get(5, TimeUnit.SECONDS);
                        Node controller = cluster.controller().get(5, TimeUnit.SECONDS);
                        String clusterId = cluster.clusterId().get(5, TimeUnit.SECONDS);
                        if (nodes.isEmpty() || controller == null || controller.isEmpty()) {
                            throw new IllegalStateException("no live broker/controller in metadata yet");
                        }
                        System.out.println("metadata ok: cluster.id=" + clusterId + " brokers=" + nodes.size());
                        clusterOk = true;
                    }
                    if (warm) {
                        admin.listConsumerGroupOffsets("livewatch-readycheck-warmup")
                             .partitionsToOffsetAndMetadata().get(10, TimeUnit.SECONDS);
                        System.out.println("group coordinator ok");
                    }
                    return;
                } catch (Exception e) {
                    Throwable cause = e.getCause() != null ? e.getCause() : e;
                    lastError = cause.getClass().getSimpleName() + ": " + cause.getMessage();
                    Thread.sleep(200);
                }
            }
        }
        System.err.println("broker at " + bootstrap + " not ready: " + lastError);
        System.exit(1);
    }
}
