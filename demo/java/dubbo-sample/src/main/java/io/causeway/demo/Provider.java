package io.causeway.demo;

import io.causeway.demo.api.GreetingService;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.apache.dubbo.config.ApplicationConfig;
import org.apache.dubbo.config.ProtocolConfig;
import org.apache.dubbo.config.RegistryConfig;
import org.apache.dubbo.config.ServiceConfig;
import org.apache.dubbo.config.bootstrap.DubboBootstrap;

/**
 * Exports {@link GreetingService} over the dubbo protocol with Hessian2 and registers it in
 * ZooKeeper or Nacos, the way an ordinary Dubbo 3 application does. Prints {@code READY <port>}
 * on stdout once exported and registered, then serves until killed.
 *
 * <p>Settings (see {@link Options} for how they are looked up):
 * <pre>
 *   --registry       zookeeper://127.0.0.1:2181 | nacos://127.0.0.1:8848 (default: none, not registered)
 *   --port           dubbo protocol port (default 20880)
 *   --version        service version (default 1.0.0); --group service group (default none)
 *   --app-name       Dubbo application name (default causeway-demo-provider)
 *   --app-version    registered as aeraki_meta_app_version, the mesh's `version` label
 *   --zone, --region registered as zone / region, the mesh's locality
 *   --register-mode  interface (default) | instance | all
 *   --advertise      loopback (default) | auto | an IP; --home, --log-level: see Options
 * </pre>
 */
public final class Provider {
    private Provider() {}

    public static void main(String[] argv) throws InterruptedException {
        try {
            Options options = Options.parse(argv);
            options.prepareJvm();
            start(options);
        } catch (Options.UsageError e) {
            System.err.println("provider: " + e.getMessage());
            System.exit(2);
        } catch (RuntimeException e) {
            // Exit rather than linger half-started: Dubbo's and Curator's threads would otherwise
            // keep a provider that never printed READY alive.
            e.printStackTrace();
            System.exit(1);
        }
        // Dubbo's threads are daemons; keep the JVM alive until it is killed.
        new CountDownLatch(1).await();
    }

    private static void start(Options options) {
        // Without a registry (a proxy or a consumer is given the address directly) Dubbo's own
        // "N/A" address turns registration off.
        String registryAddress = options.get("registry", RegistryConfig.NO_AVAILABLE);
        int port = options.getInt("port", 20880);
        String appVersion = options.get("app-version", null);

        ApplicationConfig application = new ApplicationConfig(options.get("app-name", "causeway-demo-provider"));
        // QoS would bind port 22222 in every JVM, so two providers on one machine would clash.
        application.setQosEnable(false);
        application.setRegisterMode(options.get("register-mode", "interface"));

        ProtocolConfig protocol = new ProtocolConfig("dubbo", port);
        // Hessian2 on the wire, and advertised as preferred, so consumers never switch to
        // fastjson2 (the 3.2.x default preference).
        protocol.setSerialization("hessian2");
        protocol.setPreferSerialization("hessian2");
        String advertise = options.advertise();
        if (!"loopback".equals(advertise) && !"auto".equals(advertise)) {
            protocol.setHost(advertise);
        }

        // Parameters operators already use (dubbo2istio's keys and plain zone/region), so the
        // mesh labels and localities come from the registry without any code of its own.
        Map<String, String> parameters = new LinkedHashMap<>();
        putIfPresent(parameters, "aeraki_meta_app_version", appVersion);
        putIfPresent(parameters, "zone", options.get("zone", null));
        putIfPresent(parameters, "region", options.get("region", null));

        ServiceConfig<GreetingService> service = new ServiceConfig<>();
        service.setInterface(GreetingService.class);
        // Who answers, e.g. "v2 in zone-a on port 20880": callers (and the causeway demo's
        // scenarios) count versions and zones from it.
        String zone = options.get("zone", null);
        String instance = (appVersion == null ? "provider" : appVersion)
                + (zone == null ? "" : " in " + zone) + " on port " + port;
        service.setRef(new GreetingServiceImpl(instance));
        service.setVersion(options.get("version", "1.0.0"));
        service.setGroup(options.get("group", null));
        service.setParameters(parameters);

        DubboBootstrap.getInstance()
                .application(application)
                .registry(new RegistryConfig(registryAddress))
                .protocol(protocol)
                .service(service)
                .start();
        System.out.println("READY " + port);
        System.out.flush();
    }

    private static void putIfPresent(Map<String, String> parameters, String key, String value) {
        if (value != null) {
            parameters.put(key, value);
        }
    }
}
