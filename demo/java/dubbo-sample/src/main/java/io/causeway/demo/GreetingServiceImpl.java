package io.causeway.demo;

import io.causeway.demo.api.GreetingService;
import io.causeway.demo.api.Order;

/** The provider's implementation; {@code instance} tells callers which provider answered. */
final class GreetingServiceImpl implements GreetingService {
    /** Upper bound on {@link #slow}, so a typo cannot park a provider thread for hours. */
    private static final int MAX_SLOW_MILLIS = 60_000;

    private final String instance;

    GreetingServiceImpl(String instance) {
        this.instance = instance;
    }

    @Override
    public String greet(String name) {
        return "Hello, " + name + " (from " + instance + ")";
    }

    @Override
    public String slow(String name, int millis) {
        if (millis < 0 || millis > MAX_SLOW_MILLIS) {
            throw new IllegalArgumentException("millis must be within 0.." + MAX_SLOW_MILLIS + ", got " + millis);
        }
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while sleeping", e);
        }
        return greet(name);
    }

    @Override
    public Order place(Order order) {
        if (order == null) {
            throw new IllegalArgumentException("no order");
        }
        if (order.getQuantity() < 1) {
            throw new IllegalArgumentException("quantity must be at least 1, got " + order.getQuantity());
        }
        return new Order(order.getId() + "-accepted", order.getQuantity(),
                Math.multiplyExact(order.getPriceCents(), (long) order.getQuantity()));
    }
}
