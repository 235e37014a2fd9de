package crosscheck;

import java.io.Serializable;

/** A POJO with a string, an int and a long, declared in this order (hessian-lite picks its own field order). */
public class User implements Serializable {
    private static final long serialVersionUID = 1L;

    public String name;
    public int age;
    public long id;

    public User() {}

    public User(String name, int age, long id) {
        this.name = name;
        this.age = age;
        this.id = id;
    }
}
