package io.causeway.demo.api;

/** The demo's Dubbo interface: plain strings, a deliberately slow call, and a POJO round trip. */
public interface GreetingService {

    /** Greets {@code name}; the answer names the provider instance that served it. */
    String greet(String name);

    /** Like {@link #greet}, after sleeping {@code millis} (0 to 60000) first: for timeout tests. */
    String slow(String name, int millis);

    /**
     * Accepts an order and answers it priced: the id gains an {@code -accepted} suffix and the
     * price becomes the total ({@code quantity * priceCents}). A quantity below 1 is refused with
     * an {@link IllegalArgumentException}, which Dubbo sends back as an exception response.
     */
    Order place(Order order);
}
