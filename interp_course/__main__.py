from interp_course.cli import main

main()
