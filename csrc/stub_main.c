/* The init stub: the executor linked statically, exec'd from a sealed memfd by every spawn
 * before anything enters a container (see "the init stub" in executor.c). */
int pyrt_stub_main(int argc, char **argv);

int main(int argc, char **argv)
{
    return pyrt_stub_main(argc, argv);
}
