package io.causeway.demo;

import io.causeway.demo.api.GreetingService;
import io.causeway.demo.api.Order;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.dubbo.config.ApplicationConfig;
import org.apache.dubbo.config.ReferenceConfig;
import org.apache.dubbo.config.RegistryConfig;
import org.apache.dubbo.config.bootstrap.DubboBootstrap;

/**
 * Calls {@link GreetingService} a number of times and prints one JSON object per call on stdout:
 * <pre>
 *   {"call":1,"method":"greet","ok":true,"micros":812,"result":"Hello, causeway (from v1 in zone-a on port 20880)"}
 *   {"call":1,"method":"place","ok":true,"micros":950,"result":{"id":"order-1-accepted","quantity":2,"priceCents":500}}
 *   {"call":2,"method":"place","ok":false,"micros":700,"error":"java.lang.IllegalArgumentException","message":"…"}
 * </pre>
 * Exits 0 when every call succeeded, 1 when any failed, 2 on bad settings.
 *
 * <p>Settings (see {@link Options} for how they are looked up):
 * <pre>
 *   --url            dubbo://127.0.0.1:PORT: call this address directly (a proxy in between, say)
 *   --registry       zookeeper://… | nacos://…: find providers there (used when --url is absent)
 *   --version        service version (default 1.0.0); --group service group (default none)
 *   --method         greet (default) | slow | place, or several separated by commas
 *   --calls          calls per method (default 1)
 *   --name           greet/slow argument (default causeway); --millis slow's sleep (default 100)
 *   --quantity, --price-cents   place's order (defaults 2 and 250)
 *   --timeout        per-call timeout in ms (default 5000)
 *   --home, --log-level, --advertise: see Options
 * </pre>
 * Retries are off, so every failure shows up in the output instead of being retried elsewhere.
 */
public final class Consumer {
    private Consumer() {}

    public static void main(String[] argv) {
        int status;
        try {
            Options options = Options.parse(argv);
            options.prepareJvm();
            status = run(options);
        } catch (Options.UsageError e) {
            System.err.println("consumer: " + e.getMessage());
            status = 2;
        } catch (RuntimeException e) {
            // Dubbo could not start (say, the registry is unreachable): no call was made.
            e.printStackTrace();
            status = 1;
        }
        System.out.flush();
        System.exit(status);
    }

    private static int run(Options options) {
        String url = options.get("url", null);
        String registry = options.get("registry", null);
        if (url == null && registry == null) {
            throw new Options.UsageError("give --url dubbo://HOST:PORT or --registry URL");
        }
        List<String> methods = List.of(options.get("method", "greet").split(","));
        for (String method : methods) {
            if (!List.of("greet", "slow", "place").contains(method)) {
                throw new Options.UsageError("unknown --method " + method);
            }
        }
        int calls = options.getInt("calls", 1);
        String name = options.get("name", "causeway");
        int millis = options.getInt("millis", 100);
        int quantity = options.getInt("quantity", 2);
        long priceCents = options.getInt("price-cents", 250);

        ApplicationConfig application = new ApplicationConfig(options.get("app-name", "causeway-demo-consumer"));
        // QoS would bind port 22222 in every JVM, so parallel consumers would clash.
        application.setQosEnable(false);

        ReferenceConfig<GreetingService> reference = new ReferenceConfig<>();
        reference.setInterface(GreetingService.class);
        reference.setVersion(options.get("version", "1.0.0"));
        reference.setGroup(options.get("group", null));
        reference.setTimeout(options.getInt("timeout", 5000));
        reference.setRetries(0);
        // Report a missing provider per call rather than failing before the first one.
        reference.setCheck(false);
        // Providers register interface-level; don't wait for application-level discovery first.
        reference.setParameters(Map.of("migration.step", "FORCE_INTERFACE"));
        if (url != null) {
            reference.setUrl(url);
        }

        DubboBootstrap bootstrap = DubboBootstrap.getInstance().application(application);
        if (url == null) {
            RegistryConfig registryConfig = new RegistryConfig(registry);
            // A one-shot consumer applies no governance rules, and the config centre's watchers
            // (on by default when the registry doubles as one) log errors while it stops.
            registryConfig.setUseAsConfigCenter(false);
            bootstrap.registry(registryConfig);
        }
        bootstrap.reference(reference).start();
        GreetingService greetings = reference.get();

        int failed = 0;
        for (int call = 1; call <= calls; call++) {
            for (String method : methods) {
                List<String> fields = new ArrayList<>();
                fields.add("\"call\":" + call);
                fields.add("\"method\":" + quote(method));
                long started = System.nanoTime();
                try {
                    String result;
                    switch (method) {
                        case "greet":
                            result = quote(greetings.greet(name));
                            break;
                        case "slow":
                            result = quote(greetings.slow(name, millis));
                            break;
                        default:
                            result = orderJson(greetings.place(new Order("order-" + call, quantity, priceCents)));
                            break;
                    }
                    fields.add("\"ok\":true");
                    fields.add("\"micros\":" + micros(started));
                    fields.add("\"result\":" + result);
                } catch (RuntimeException e) {
                    failed++;
                    fields.add("\"ok\":false");
                    fields.add("\"micros\":" + micros(started));
                    fields.add("\"error\":" + quote(e.getClass().getName()));
                    fields.add("\"message\":" + quote(String.valueOf(e.getMessage())));
                }
                System.out.println("{" + String.join(",", fields) + "}");
            }
        }
        System.err.printf("consumer: %d of %d calls failed%n", failed, calls * methods.size());
        System.out.flush();
        // Stop in order (unregister, close clients, then the registry) rather than leaving it to
        // the shutdown hook, which races the registry client's watchers and logs errors.
        bootstrap.stop();
        return failed == 0 ? 0 : 1;
    }

    private static long micros(long startedNanos) {
        return (System.nanoTime() - startedNanos) / 1000;
    }

    private static String orderJson(Order order) {
        if (order == null) {
            return "null";
        }
        return "{\"id\":" + quote(order.getId()) + ",\"quantity\":" + order.getQuantity()
                + ",\"priceCents\":" + order.getPriceCents() + "}";
    }

    /** A JSON string literal (RFC 8259 escaping), or null. */
    static String quote(String text) {
        if (text == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder(text.length() + 2).append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"':
                    out.append("\\\"");
                    break;
                case '\\':
                    out.append("\\\\");
                    break;
                case '\n':
                    out.append("\\n");
                    break;
                case '\r':
                    out.append("\\r");
                    break;
                case '\t':
                    out.append("\\t");
                    break;
                default:
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        return out.append('"').toString();
    }
}
