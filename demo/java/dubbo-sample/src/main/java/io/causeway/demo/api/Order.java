package io.causeway.demo.api;

import java.io.Serializable;
import java.util.Objects;

/** A small POJO so the Hessian2 traffic carries a real Java object, not just strings. */
public class Order implements Serializable {
    private static final long serialVersionUID = 1L;

    private String id;
    private int quantity;
    private long priceCents;

    /** Hessian needs a no-argument constructor to rebuild the object. */
    public Order() {}

    public Order(String id, int quantity, long priceCents) {
        this.id = id;
        this.quantity = quantity;
        this.priceCents = priceCents;
    }

    public String getId() {
        return id;
    }

    public void setId(String id) {
        this.id = id;
    }

    public int getQuantity() {
        return quantity;
    }

    public void setQuantity(int quantity) {
        this.quantity = quantity;
    }

    public long getPriceCents() {
        return priceCents;
    }

    public void setPriceCents(long priceCents) {
        this.priceCents = priceCents;
    }

    @Override
    public boolean equals(Object other) {
        if (!(other instanceof Order)) {
            return false;
        }
        Order that = (Order) other;
        return quantity == that.quantity && priceCents == that.priceCents && Objects.equals(id, that.id);
    }

    @Override
    public int hashCode() {
        return Objects.hash(id, quantity, priceCents);
    }

    @Override
    public String toString() {
        return "Order{id=" + id + ", quantity=" + quantity + ", priceCents=" + priceCents + "}";
    }
}
