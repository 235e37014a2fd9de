package crosscheck;

import java.io.Serializable;

/** A POJO holding two arbitrary values: nesting, shared objects and cycles through objects. */
public class Pair implements Serializable {
    private static final long serialVersionUID = 1L;

    public Object first;
    public Object second;

    public Pair() {}

    public Pair(Object first, Object second) {
        this.first = first;
        this.second = second;
    }
}
