package io.causeway.demo;

import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Settings for the demo programs, so the same jar runs unchanged on a laptop, in a test and in a
 * container. Each key (say {@code app-version}) is looked up, first hit wins, as
 * <ol>
 *   <li>the command-line argument {@code --app-version VALUE} (or {@code --app-version=VALUE}),</li>
 *   <li>the system property {@code causeway.demo.app-version},</li>
 *   <li>the environment variable {@code CAUSEWAY_DEMO_APP_VERSION},</li>
 *   <li>the program's default.</li>
 * </ol>
 */
final class Options {
    /** Bad or missing settings: the programs report it and exit with status 2. */
    static final class UsageError extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UsageError(String message) {
            super(message);
        }
    }

    private final Map<String, String> args = new HashMap<>();

    private Options() {}

    static Options parse(String[] argv) {
        Options options = new Options();
        for (int i = 0; i < argv.length; i++) {
            String arg = argv[i];
            if (!arg.startsWith("--") || arg.length() == 2) {
                throw new UsageError("expected --key value, got " + arg);
            }
            String key = arg.substring(2);
            int eq = key.indexOf('=');
            if (eq >= 0) {
                options.args.put(key.substring(0, eq), key.substring(eq + 1));
            } else if (i + 1 < argv.length) {
                options.args.put(key, argv[++i]);
            } else {
                throw new UsageError("--" + key + " needs a value");
            }
        }
        return options;
    }

    /** The value of {@code key}, or {@code fallback} (may be null) when nothing sets it. */
    String get(String key, String fallback) {
        String value = args.get(key);
        if (value == null) {
            value = System.getProperty("causeway.demo." + key);
        }
        if (value == null) {
            value = System.getenv("CAUSEWAY_DEMO_" + key.toUpperCase(Locale.ROOT).replace('-', '_'));
        }
        if (value == null || value.isBlank()) {
            return fallback;
        }
        return value.trim();
    }

    /** A value that must be given. */
    String require(String key) {
        String value = get(key, null);
        if (value == null) {
            throw new UsageError("missing --" + key);
        }
        return value;
    }

    int getInt(String key, int fallback) {
        String value = get(key, null);
        if (value == null) {
            return fallback;
        }
        try {
            return Integer.parseInt(value);
        } catch (NumberFormatException e) {
            throw new UsageError("--" + key + " must be a whole number, got " + value);
        }
    }

    /**
     * JVM-wide settings that must be in place before Dubbo, ZooKeeper or Nacos classes load.
     *
     * <ul>
     *   <li>{@code --home DIR} becomes {@code user.home}: Dubbo's file caches ({@code ~/.dubbo})
     *       and the Nacos client's logs and snapshots ({@code ~/logs}, {@code ~/nacos}) live
     *       there, so parallel runs given different homes never share or lock each other's
     *       files.</li>
     *   <li>{@code --log-level} (default {@code warn}) for slf4j-simple, which writes to stderr and
     *       so keeps stdout for the program's own output.</li>
     *   <li>{@code --advertise loopback} (the default) makes Dubbo use 127.0.0.1. Dubbo refuses
     *       127.x as a configured host or {@code DUBBO_IP_TO_REGISTRY} and otherwise picks the
     *       first non-loopback interface; ignoring every interface (the property takes regular
     *       expressions) leaves it its own fallback, 127.0.0.1, so providers register and bind
     *       reachable loopback addresses and no traffic leaves the machine. {@code auto} keeps
     *       Dubbo's own choice; the provider treats any other value as the IP to advertise.</li>
     * </ul>
     */
    void prepareJvm() {
        String home = get("home", null);
        if (home != null) {
            System.setProperty("user.home", home);
        }
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", get("log-level", "warn"));
        if ("loopback".equals(advertise())) {
            System.setProperty("dubbo.network.interface.ignored", ".*");
            // With every interface ignored, NetUtils logs a stack trace before falling back to
            // 127.0.0.1 as intended; that is noise here.
            System.setProperty("org.slf4j.simpleLogger.log.org.apache.dubbo.common.utils.NetUtils", "error");
        }
    }

    String advertise() {
        return get("advertise", "loopback");
    }
}
