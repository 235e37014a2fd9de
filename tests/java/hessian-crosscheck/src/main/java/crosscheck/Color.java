package crosscheck;

/** An enum: hessian-lite writes it as an object with the single field {@code name}. */
public enum Color {
    RED,
    GREEN,
    BLUE
}
